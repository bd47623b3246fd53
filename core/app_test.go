package core_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

type recorder struct{ events []string }

func (r *recorder) provider(name string, startErr, stopErr error) core.Provider {
	return core.ProviderFuncs{
		ProviderName: name,
		StartFunc: func(ctx context.Context, app *core.App) error {
			r.events = append(r.events, "start "+name)
			if startErr != nil {
				return startErr
			}
			return app.SetPort(name, name+"-value")
		},
		StopFunc: func(ctx context.Context, app *core.App) error {
			r.events = append(r.events, "stop "+name)
			app.RemovePort(name)
			return stopErr
		},
	}
}

func TestAppStartsInOrderAndStopsInReverse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec := &recorder{}
	app := core.NewApp(core.AppOptions{})
	require.NoError(t, app.Register(rec.provider("a", nil, nil), rec.provider("b", nil, nil), rec.provider("c", nil, nil)))
	require.NoError(t, app.Start(ctx))
	v, err := core.Port[string](app, "b")
	require.NoError(t, err)
	require.Equal(t, "b-value", v)
	require.NoError(t, app.Stop(ctx))
	require.Equal(t, []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}, rec.events)
}

func TestAppStartFailureStopsStartedProvidersInReverse(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec := &recorder{}
	boom := errors.New("boom")
	app := core.NewApp(core.AppOptions{})
	require.NoError(t, app.Register(rec.provider("a", nil, nil), rec.provider("b", nil, nil), rec.provider("c", boom, nil), rec.provider("d", nil, nil)))
	err := app.Start(ctx)
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, `provider "c"`)
	require.Equal(t, []string{"start a", "start b", "start c", "stop b", "stop a"}, rec.events)
	_, err = core.Port[string](app, "a")
	require.ErrorIs(t, err, core.ErrPortNotFound, "stopped providers removed their ports")
}

func TestAppStopJoinsErrorsAndStopsEveryProvider(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec := &recorder{}
	e1, e2 := errors.New("e1"), errors.New("e2")
	app := core.NewApp(core.AppOptions{})
	require.NoError(t, app.Register(rec.provider("a", nil, e1), rec.provider("b", nil, e2)))
	require.NoError(t, app.Start(ctx))
	err := app.Stop(ctx)
	require.ErrorIs(t, err, e1)
	require.ErrorIs(t, err, e2)
	require.Equal(t, []string{"start a", "start b", "stop b", "stop a"}, rec.events)
	require.NoError(t, app.Stop(ctx), "a second Stop does nothing")
}

func TestAppRejectsBadRegistrations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		providers []core.Provider
		want      string
	}{
		{name: "NilProvider", providers: []core.Provider{nil}, want: "nil provider"},
		{name: "EmptyName", providers: []core.Provider{core.ProviderFuncs{}}, want: "empty name"},
		{name: "DuplicateName", providers: []core.Provider{core.ProviderFuncs{ProviderName: "x"}, core.ProviderFuncs{ProviderName: "x"}}, want: `"x" registered twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := core.NewApp(core.AppOptions{}).Register(tt.providers...)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tt.want)
		})
	}
	t.Run("AfterStart", func(t *testing.T) {
		t.Parallel()
		app := core.NewApp(core.AppOptions{})
		require.NoError(t, app.Start(context.Background()))
		require.ErrorContains(t, app.Register(core.ProviderFuncs{ProviderName: "late"}), "already started")
	})
}

func TestPortLookupErrorsNameThePortAndTypes(t *testing.T) {
	t.Parallel()
	app := core.NewApp(core.AppOptions{})
	require.NoError(t, app.SetPort("db", 42))

	_, err := core.Port[string](app, "db")
	require.ErrorIs(t, err, core.ErrPortType)
	require.ErrorContains(t, err, `port "db" is a int, not a string`)

	_, err = core.Port[int](app, "cache")
	require.ErrorIs(t, err, core.ErrPortNotFound)
	require.ErrorContains(t, err, `"cache"`)
	require.ErrorContains(t, err, "int")

	err = app.SetPort("db", 1)
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	require.ErrorContains(t, err, "already installed")
	require.ErrorIs(t, app.SetPort("x", nil), ports.ErrInvalidArgument)
	require.True(t, strings.Contains(app.SetPort("", 1).Error(), "empty name"))
}
