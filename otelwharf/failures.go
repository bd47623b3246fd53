package otelwharf

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/wharf-go/wharf/core/relay"
)

// AttrRelayOperation is the relay operation of a wharf.relay.failures
// point: claim, complete, extend or release.
const AttrRelayOperation = attribute.Key("wharf.relay.operation")

// MetricRelayFailures counts failed outbox operations of relays.
const MetricRelayFailures = "wharf.relay.failures"

// OnRelayFailure counts a relay's failed claim, completion, lease
// extension or release in wharf.relay.failures (by wharf.relay.operation),
// so that an outage shows on a dashboard and not only in the relay's
// rate-limited logs. Give it to relays: relay.Options{OnFailure:
// inst.OnRelayFailure}.
func (in *Instrumentation) OnRelayFailure(ctx context.Context, f relay.Failure) {
	in.m.failures.Add(ctx, 1, in.m.byFailure.get(f.Op, "", func() attribute.Set {
		return attribute.NewSet(AttrRelayOperation.String(f.Op))
	}))
}

func (m *instruments) initFailures(meter metric.Meter) (err error) {
	m.failures, err = meter.Int64Counter(MetricRelayFailures, metric.WithUnit("{failure}"),
		metric.WithDescription("Failed outbox operations of relays (which retry them): claim, complete, extend, release."))
	return err
}
