package relay

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestFailureLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(every time.Duration) (*failureLog, *bytes.Buffer) {
		var buf bytes.Buffer
		return newFailureLog(slog.New(slog.NewTextHandler(&buf, nil)), every), &buf
	}
	t.Run("RepeatedFailuresOfAKindAreLoggedOncePerInterval", func(t *testing.T) {
		l, buf := setup(time.Hour)
		for range 100 {
			l.failed(ctx, "complete", slog.LevelError, "complete failed")
		}
		l.failed(ctx, "extend", slog.LevelWarn, "extend failed")
		require.Equal(t, 1, strings.Count(buf.String(), "complete failed"))
		require.Equal(t, 1, strings.Count(buf.String(), "extend failed"), "each kind is limited on its own")
	})
	t.Run("TheNextRecordAfterTheIntervalCountsTheSuppressedOnes", func(t *testing.T) {
		l, buf := setup(time.Nanosecond)
		l.failed(ctx, "claim", slog.LevelError, "claim failed")
		l.mu.Lock()
		l.kinds["claim"].next = time.Now().Add(time.Hour) // inside the interval
		l.mu.Unlock()
		l.failed(ctx, "claim", slog.LevelError, "claim failed")
		l.failed(ctx, "claim", slog.LevelError, "claim failed")
		l.mu.Lock()
		l.kinds["claim"].next = time.Time{} // the interval has passed
		l.mu.Unlock()
		l.failed(ctx, "claim", slog.LevelError, "claim failed")
		require.Equal(t, 2, strings.Count(buf.String(), "claim failed"))
		require.Contains(t, buf.String(), "suppressed=2")
	})
	t.Run("RecoveryEndsTheRunAndSaysHowLongItWas", func(t *testing.T) {
		l, buf := setup(time.Hour)
		l.recovered(ctx, "claim", "claims succeed again")
		require.Empty(t, buf.String(), "no run, nothing to say")
		l.failed(ctx, "claim", slog.LevelError, "claim failed")
		l.recovered(ctx, "claim", "claims succeed again")
		require.NotContains(t, buf.String(), "succeed again", "one failure said everything")
		for range 3 {
			l.failed(ctx, "claim", slog.LevelError, "claim failed")
		}
		l.recovered(ctx, "claim", "claims succeed again")
		require.Contains(t, buf.String(), `msg="claims succeed again" failures=3`)
		l.failed(ctx, "claim", slog.LevelError, "claim failed")
		require.Equal(t, 3, strings.Count(buf.String(), "claim failed"), "a new run logs its first failure at once")
	})
}
