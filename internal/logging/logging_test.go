package logging_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/internal/logging"
)

// captureDefault installs, as slog.Default, a JSON handler (without times)
// that writes to the returned buffer and passes level and above; the
// previous default is restored when the test ends. Tests that use it must
// not run in parallel: slog.Default is process-wide.
func captureDefault(t *testing.T, level slog.Level) *bytes.Buffer {
	t.Helper()
	prev := slog.Default()
	t.Cleanup(func() { slog.SetDefault(prev) })
	var buf bytes.Buffer
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	})))
	return &buf
}

func lines(buf *bytes.Buffer) []string {
	s := strings.TrimSpace(buf.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func TestOrDefaultNilPassesWarnAndErrorOnly(t *testing.T) {
	buf := captureDefault(t, slog.LevelDebug)
	ctx := context.Background()
	l := logging.OrDefault(nil)
	require.NotNil(t, l)

	l.Debug("debug")
	l.Info("info")
	l.Warn("warn")
	l.Error("error")
	require.Equal(t, []string{
		`{"level":"WARN","msg":"warn"}`,
		`{"level":"ERROR","msg":"error"}`,
	}, lines(buf), "only warn and error reach the default handler, which would take debug and info")

	require.False(t, l.Enabled(ctx, slog.LevelDebug))
	require.False(t, l.Enabled(ctx, slog.LevelInfo))
	require.True(t, l.Enabled(ctx, slog.LevelWarn))
	require.True(t, l.Enabled(ctx, slog.LevelError))
}

func TestOrDefaultNilHonoursTheDefaultHandlerLevel(t *testing.T) {
	buf := captureDefault(t, slog.LevelError)
	l := logging.OrDefault(nil)
	l.Warn("warn")
	l.Error("error")
	require.Equal(t, []string{`{"level":"ERROR","msg":"error"}`}, lines(buf), "a default handler at error drops warnings")
	require.False(t, l.Enabled(context.Background(), slog.LevelWarn))
}

func TestOrDefaultNilFollowsALaterDefault(t *testing.T) {
	first := captureDefault(t, slog.LevelDebug)
	l := logging.OrDefault(nil) // made before the default changes
	second := captureDefault(t, slog.LevelDebug)
	l.Warn("warn")
	require.Empty(t, first.String())
	require.Equal(t, []string{`{"level":"WARN","msg":"warn"}`}, lines(second))
}

func TestOrDefaultNilKeepsAttrsAndGroupsInOrder(t *testing.T) {
	buf := captureDefault(t, slog.LevelDebug)
	l := logging.OrDefault(nil).With("a", 1).WithGroup("g").With("b", 2).WithGroup("h")
	l.Warn("m", "c", 3)
	l.Info("dropped", "c", 4)
	require.Equal(t, []string{
		`{"level":"WARN","msg":"m","a":1,"g":{"b":2,"h":{"c":3}}}`,
	}, lines(buf))

	// A derived logger does not change the one it was derived from.
	buf.Reset()
	base := logging.OrDefault(nil).With("a", 1)
	_ = base.WithGroup("g").With("b", 2)
	base.Warn("m")
	require.Equal(t, []string{`{"level":"WARN","msg":"m","a":1}`}, lines(buf))
}

func TestOrDefaultReturnsAGivenLoggerAsIs(t *testing.T) {
	buf := captureDefault(t, slog.LevelDebug)
	var own bytes.Buffer
	l := slog.New(slog.NewTextHandler(&own, &slog.HandlerOptions{Level: slog.LevelDebug}))
	got := logging.OrDefault(l)
	require.Same(t, l, got)
	got.Debug("debug")
	require.Contains(t, own.String(), "msg=debug", "the caller's logger keeps its own level")
	require.Empty(t, buf.String(), "nothing goes to the default")
}
