package otelwharf_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/otelwharf"
	"github.com/wharf-go/wharf/ports"
)

func TestRelayFailuresAreCounted(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t, otelwharf.Options{})
	drv, err := wharf.Open(t.Context(), "file:"+filepath.Join(t.TempDir(), "f.db"), wharf.Options{Hooks: tel.inst.Hooks()})
	require.NoError(t, err)
	require.NoError(t, drv.Migrate(t.Context()))
	_, err = drv.Outbox().Enqueue(t.Context(), msg("f.x"))
	require.NoError(t, err)
	hs := relay.NewHandlers()
	require.NoError(t, hs.Handle("f.x", func(context.Context, ports.ClaimedMessage) error { return nil }, relay.TopicOptions{}))
	r, err := relay.New(drv.Outbox(), hs, relay.Options{Hooks: tel.inst.Hooks(), OnFailure: tel.inst.OnRelayFailure})
	require.NoError(t, err)

	// The database goes away: the claim fails.
	require.NoError(t, drv.Close())
	_, err = r.Drain(t.Context())
	require.Error(t, err)

	ms := tel.collect(t)
	failures := sumsBy(t, ms[otelwharf.MetricRelayFailures], "wharf.relay.operation")
	require.Positive(t, failures["claim"], "claim failures: %v", failures)
	claims := histograms[int64](t, ms[otelwharf.MetricClaimSize])
	require.Positive(t, claims[""].Count, "failed claims are measured too")
	require.NotEmpty(t, tel.ended("receive"), "a failed claim records a span")
}
