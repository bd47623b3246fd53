package wharf_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
	_ "github.com/wharf-go/wharf/providers/sqlite" // the only provider linked into this test
)

func fileURL(t *testing.T) string {
	return "file:" + filepath.Join(t.TempDir(), "wharf.db")
}

func TestOpenRefusesWhatItCannotOpen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, url string
		opts      wharf.Options
		want      string
	}{
		{"NoScheme", "app.db", wharf.Options{}, "database URL has no scheme"},
		{"UnknownScheme", "redis://localhost:6379/0", wharf.Options{}, `no wharf provider for URL scheme "redis"`},
		{"ProviderNotImported", "postgres://u:secret@localhost/app", wharf.Options{}, "import the provider package github.com/wharf-go/wharf/providers/postgres"},
		{"MalformedURLOfAnImportedProvider", "file:", wharf.Options{}, `no file path after "file:"`},
		{"NegativeTTL", "", wharf.Options{Idempotency: wharf.IdempotencyOptions{TTL: -time.Second}}, "Idempotency.TTL -1s"},
		{"NegativeMaxAttempts", "", wharf.Options{Outbox: wharf.OutboxOptions{DefaultMaxAttempts: -1}}, "Outbox.DefaultMaxAttempts -1"},
		{"NegativePingInterval", "", wharf.Options{Listen: wharf.ListenOptions{PingInterval: -time.Second}}, "Listen.PingInterval"},
		{"InvalidOutboxTable", "", wharf.Options{Outbox: wharf.OutboxOptions{TableName: "outbox; DROP TABLE x"}}, "outbox table name"},
		{"InvalidIdempotencyTable", "", wharf.Options{Idempotency: wharf.IdempotencyOptions{TableName: "a.b.c"}}, "idempotency table name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := tc.url
			if url == "" {
				url = fileURL(t)
			}
			drv, err := wharf.Open(t.Context(), url, tc.opts)
			require.Nil(t, drv)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tc.want)
			require.NotContains(t, err.Error(), "secret")
		})
	}
}

func TestNewDriverRefusesBadArguments(t *testing.T) {
	t.Parallel()
	_, err := wharf.NewDriver(nil, wharf.Options{})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)

	owner, err := wharf.Open(t.Context(), fileURL(t), wharf.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = owner.Close() })
	_, err = wharf.NewDriver(owner.DB(), wharf.Options{Idempotency: wharf.IdempotencyOptions{Lease: -1}})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
}

// TestCloseClosesOnlyAPoolItOpened: a driver from Open owns its pool, one
// from NewDriver leaves the application's pool open.
func TestCloseClosesOnlyAPoolItOpened(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	owner, err := wharf.Open(ctx, fileURL(t), wharf.Options{})
	require.NoError(t, err)
	borrower, err := wharf.NewDriver(owner.DB(), wharf.Options{})
	require.NoError(t, err)
	require.Equal(t, "sqlite", borrower.Dialect())
	require.NoError(t, borrower.Close())
	require.NoError(t, owner.DB().PingContext(ctx), "the borrowed pool stays open")
	require.NoError(t, owner.Close())
	require.Error(t, owner.DB().PingContext(ctx), "the owned pool is closed")
}

func TestOpenAppliesThePoolOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		pool wharf.PoolOptions
		want int
	}{
		{"ZeroMeansTheDefault", wharf.PoolOptions{}, wharf.DefaultMaxOpenConns},
		{"PositiveIsTheLimit", wharf.PoolOptions{MaxOpenConns: 3}, 3},
		{"NegativeMeansNoLimit", wharf.PoolOptions{MaxOpenConns: -1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			drv, err := wharf.Open(t.Context(), fileURL(t), wharf.Options{Pool: tc.pool})
			require.NoError(t, err)
			t.Cleanup(func() { _ = drv.Close() })
			require.Equal(t, tc.want, drv.DB().Stats().MaxOpenConnections)
		})
	}
}

func TestNewUnitOfWorkRefusesBadArguments(t *testing.T) {
	t.Parallel()
	drv, err := wharf.Open(t.Context(), fileURL(t), wharf.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	build := func(tx wharf.Tx) (wharf.Tx, error) { return tx, nil }
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"NilDriver", func() error { _, err := wharf.NewUnitOfWork(nil, build, wharf.UnitOfWorkOptions{}); return err }()},
		{"NilBuild", func() error {
			_, err := wharf.NewUnitOfWork[wharf.Tx](drv, nil, wharf.UnitOfWorkOptions{})
			return err
		}()},
		{"NegativeMaxAttempts", func() error {
			_, err := wharf.NewUnitOfWork(drv, build, wharf.UnitOfWorkOptions{MaxAttempts: -1})
			return err
		}()},
		{"NegativeRetryDelay", func() error {
			_, err := wharf.NewUnitOfWork(drv, build, wharf.UnitOfWorkOptions{RetryDelay: -time.Millisecond})
			return err
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.ErrorIs(t, tc.err, ports.ErrInvalidArgument)
		})
	}
}

// TestProviderInstallsTheDriverAndNamesTheURLsSource boots a core.App with
// a wharf.Provider: the driver is a typed port, Stop closes it, and every
// boot error names where the URL came from.
func TestProviderInstallsTheDriverAndNamesTheURLsSource(t *testing.T) {
	t.Run("InstallsAndCloses", func(t *testing.T) {
		t.Setenv("WHARF_TEST_APP_DB", fileURL(t))
		app := core.NewApp(core.AppOptions{})
		p := wharf.NewProvider(wharf.ProviderOptions{EnvVar: "WHARF_TEST_APP_DB"})
		require.NoError(t, app.Register(p))
		require.NoError(t, app.Start(t.Context()))
		drv, err := core.Port[*wharf.Driver](app, wharf.DefaultPortName)
		require.NoError(t, err)
		require.Same(t, p.Driver(), drv)
		require.NoError(t, drv.Migrate(t.Context()))
		require.NoError(t, app.Stop(t.Context()))
		require.Nil(t, p.Driver())
		require.Error(t, drv.DB().PingContext(context.Background()), "Stop closed the pool")
		_, err = core.Port[*wharf.Driver](app, wharf.DefaultPortName)
		require.True(t, errors.Is(err, core.ErrPortNotFound))
	})
	for _, tc := range []struct {
		name, env string
		opts      wharf.ProviderOptions
		want      []string
	}{
		{"MissingVariable", "", wharf.ProviderOptions{EnvVar: "WHARF_TEST_APP_DB"}, []string{"WHARF_TEST_APP_DB is not set"}},
		{"MalformedURLNamesTheVariable", "nonsense", wharf.ProviderOptions{EnvVar: "WHARF_TEST_APP_DB"}, []string{"WHARF_TEST_APP_DB:", "no scheme"}},
		{"ExplicitURLNamesTheOption", "", wharf.ProviderOptions{URL: "nonsense"}, []string{"ProviderOptions.URL:"}},
		{"NeitherURLNorVariable", "", wharf.ProviderOptions{}, []string{"neither ProviderOptions.URL nor ProviderOptions.EnvVar"}},
		{"PinnedDialectRefusesAnother", "mysql://u:secret@db/app", wharf.ProviderOptions{EnvVar: "WHARF_TEST_APP_DB", Dialect: "sqlite"},
			[]string{"WHARF_TEST_APP_DB:", `must start with "file:"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("WHARF_TEST_APP_DB", tc.env)
			app := core.NewApp(core.AppOptions{})
			require.NoError(t, app.Register(wharf.NewProvider(tc.opts)))
			err := app.Start(t.Context())
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.NotContains(t, err.Error(), "secret")
		})
	}
}

// TestProvidersOfSeveralDatabasesShareAnApp: each provider is named by its
// port, so an App can hold two.
func TestProvidersOfSeveralDatabasesShareAnApp(t *testing.T) {
	app := core.NewApp(core.AppOptions{})
	a := wharf.NewProvider(wharf.ProviderOptions{URL: fileURL(t), PortName: "orders"})
	b := wharf.NewProvider(wharf.ProviderOptions{URL: fileURL(t), PortName: "billing"})
	require.NotEqual(t, a.Name(), b.Name())
	require.NoError(t, app.Register(a, b))
	require.NoError(t, app.Start(t.Context()))
	t.Cleanup(func() { _ = app.Stop(context.Background()) })
	orders, err := core.Port[*wharf.Driver](app, "orders")
	require.NoError(t, err)
	billing, err := core.Port[*wharf.Driver](app, "billing")
	require.NoError(t, err)
	require.NotSame(t, orders, billing)
}
