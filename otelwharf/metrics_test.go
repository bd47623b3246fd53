package otelwharf_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/otelwharf"
	"github.com/wharf-go/wharf/ports"
)

// A known workload and the metrics it must produce:
//
//   - a unit of work enqueues 3 × w.ok and 2 × w.flaky and reserves k1;
//   - a unit of work enqueues 1 × w.bad and reserves k1 again (in progress);
//   - a unit of work enqueues 4 × w.ok and rolls back (not counted);
//   - a unit of work enqueues 1 × w.ok in each of two attempts, the first
//     rolled back by a retryable conflict (counted once);
//   - an enqueue outside any unit of work: 1 × w.ok;
//   - k2 is reserved, completed and reserved again (a replay);
//   - relays deliver w.ok, fail w.flaky once (retried at once) and
//     dead-letter w.bad.
func TestMetricsMatchAKnownWorkload(t *testing.T) {
	t.Parallel()
	for _, d := range dialects() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			tel := newTelemetry(t, otelwharf.Options{})
			drv := openDriver(t, d.database(t), wharf.Options{Hooks: tel.inst.Hooks()})
			uow := txUnitOfWork(t, drv)
			ctx := t.Context()

			require.NoError(t, uow.Transaction(ctx, func(ctx context.Context, tx wharf.Tx) error {
				if _, err := tx.Idempotency.Reserve(ctx, reserveReq("w", "k1", "fp")); err != nil {
					return err
				}
				_, err := tx.Outbox.Enqueue(ctx, msg("w.ok"), msg("w.ok"), msg("w.flaky"), msg("w.ok"), msg("w.flaky"))
				return err
			}))
			require.NoError(t, uow.Transaction(ctx, func(ctx context.Context, tx wharf.Tx) error {
				res, err := tx.Idempotency.Reserve(ctx, reserveReq("w", "k1", "fp"))
				if err != nil {
					return err
				}
				require.Equal(t, ports.InProgress, res.Status)
				_, err = tx.Outbox.Enqueue(ctx, msg("w.bad"))
				return err
			}))
			rollback := errTest("roll back")
			require.ErrorIs(t, uow.Transaction(ctx, func(ctx context.Context, tx wharf.Tx) error {
				if _, err := tx.Outbox.Enqueue(ctx, msg("w.ok"), msg("w.ok"), msg("w.ok"), msg("w.ok")); err != nil {
					return err
				}
				return rollback
			}), rollback)
			attempts := 0
			require.NoError(t, uow.Transaction(ctx, func(ctx context.Context, tx wharf.Tx) error {
				attempts++
				if _, err := tx.Outbox.Enqueue(ctx, msg("w.ok")); err != nil {
					return err
				}
				if attempts == 1 {
					return fmt.Errorf("simulated conflict: %w", ports.ErrRetryable)
				}
				return nil
			}))
			require.Equal(t, 2, attempts, "the conflict ran the transaction again")
			_, err := drv.Outbox().Enqueue(ctx, msg("w.ok"))
			require.NoError(t, err)
			idem := drv.Idempotency()
			k2, err := idem.Reserve(ctx, reserveReq("w", "k2", "fp"))
			require.NoError(t, err)
			require.NoError(t, idem.Complete(ctx, k2, []byte(`{"ok":true}`)))
			replay, err := idem.Reserve(ctx, reserveReq("w", "k2", "fp"))
			require.NoError(t, err)
			require.Equal(t, ports.Replay, replay.Status)

			var mu sync.Mutex
			failed := map[string]bool{}
			hs := relay.NewHandlers()
			require.NoError(t, hs.Handle("w.ok", func(context.Context, ports.ClaimedMessage) error { return nil }, relay.TopicOptions{}))
			require.NoError(t, hs.Handle("w.flaky", func(_ context.Context, m ports.ClaimedMessage) error {
				mu.Lock()
				defer mu.Unlock()
				if !failed[m.ID] {
					failed[m.ID] = true
					return relay.RetryAfter(errTest("flaky"), 0)
				}
				return nil
			}, relay.TopicOptions{}))
			require.NoError(t, hs.Handle("w.bad", func(context.Context, ports.ClaimedMessage) error {
				return relay.Permanent(errTest("bad"))
			}, relay.TopicOptions{}))
			r, err := relay.New(drv.Outbox(), hs, relay.Options{Hooks: tel.inst.Hooks()})
			require.NoError(t, err)
			var total relay.DrainResult
			for range 10 { // the retried messages are ready at once: a second pass takes them
				res, err := r.Drain(ctx)
				require.NoError(t, err)
				total.Delivered += res.Delivered
				total.Retried += res.Retried
				total.DeadLettered += res.DeadLettered
				if st, err := drv.Outbox().Stats(ctx); err == nil && st.Pending() == 0 {
					break
				}
			}
			require.Equal(t, relay.DrainResult{Delivered: 7, Retried: 2, DeadLettered: 1}, total)

			ms := tel.collect(t)
			require.Equal(t, map[string]int64{"w.ok": 5, "w.flaky": 2, "w.bad": 1},
				sumsBy(t, ms[otelwharf.MetricEnqueued], "messaging.destination.name"),
				"committed enqueues only, once per committed attempt")
			require.Equal(t, map[string]int64{"w.ok/delivered": 5, "w.flaky/retried": 2, "w.flaky/delivered": 2, "w.bad/dead": 1},
				sumsBy(t, ms[otelwharf.MetricDeliveries], "messaging.destination.name", "wharf.delivery.outcome"))
			require.Equal(t, map[string]int64{"w/reserved": 2, "w/in_progress": 1, "w/replay": 1},
				sumsBy(t, ms[otelwharf.MetricReservations], "wharf.idempotency.namespace", "wharf.idempotency.outcome"))

			handler := histograms[float64](t, ms[otelwharf.MetricHandlerDuration], "messaging.destination.name", "wharf.delivery.outcome")
			require.Equal(t, map[string]uint64{"w.ok/delivered": 5, "w.flaky/retried": 2, "w.flaky/delivered": 2, "w.bad/dead": 1}, counts(handler))
			latency := histograms[float64](t, ms[otelwharf.MetricLatency], "messaging.destination.name")
			require.Equal(t, map[string]uint64{"w.ok": 5, "w.flaky": 2, "w.bad": 1}, counts(latency), "first attempts only")
			for topic, h := range latency {
				require.Positive(t, h.Sum, "%s: time passed between enqueue and handler", topic)
				require.Less(t, h.Sum, float64(h.Count)*time.Minute.Seconds(), "%s: latency in seconds", topic)
			}
			claims := histograms[int64](t, ms[otelwharf.MetricClaimSize])
			require.Equal(t, int64(10), claims[""].Sum, "8 messages, then the 2 retried ones")
			require.GreaterOrEqual(t, claims[""].Count, uint64(2))
		})
	}
}

// sumsBy returns a counter's sums by the values of keys, joined with "/".
func sumsBy(t *testing.T, m metricdata.Metrics, keys ...attribute.Key) map[string]int64 {
	t.Helper()
	sum, ok := m.Data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is a sum of int64, not %T", m.Name, m.Data)
	require.True(t, sum.IsMonotonic)
	out := map[string]int64{}
	for _, dp := range sum.DataPoints {
		out[joinAttrs(dp.Attributes, keys)] += dp.Value
	}
	return out
}

// hist is a histogram data point's count and sum.
type hist[N int64 | float64] struct {
	Count uint64
	Sum   N
}

func histograms[N int64 | float64](t *testing.T, m metricdata.Metrics, keys ...attribute.Key) map[string]hist[N] {
	t.Helper()
	h, ok := m.Data.(metricdata.Histogram[N])
	require.True(t, ok, "%s is a histogram, not %T", m.Name, m.Data)
	out := map[string]hist[N]{}
	for _, dp := range h.DataPoints {
		k := joinAttrs(dp.Attributes, keys)
		cur := out[k]
		cur.Count += dp.Count
		cur.Sum += dp.Sum
		out[k] = cur
	}
	return out
}

func counts[N int64 | float64](hs map[string]hist[N]) map[string]uint64 {
	out := make(map[string]uint64, len(hs))
	for k, h := range hs {
		out[k] = h.Count
	}
	return out
}

func joinAttrs(set attribute.Set, keys []attribute.Key) string {
	var s string
	for i, k := range keys {
		v, _ := set.Value(k)
		if i > 0 {
			s += "/"
		}
		s += v.Emit()
	}
	return s
}
