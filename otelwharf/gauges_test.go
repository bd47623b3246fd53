package otelwharf_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/otelwharf"
	"github.com/wharf-go/wharf/ports"
)

// countingAdmin counts Stats calls, and fails them while fail is set.
type countingAdmin struct {
	ports.OutboxAdmin
	calls atomic.Int64
	fail  atomic.Bool
}

func (c *countingAdmin) Stats(ctx context.Context) (ports.OutboxStats, error) {
	c.calls.Add(1)
	if c.fail.Load() {
		return ports.OutboxStats{}, errors.New("the database is away")
	}
	return c.OutboxAdmin.Stats(ctx)
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestOutboxGaugesMatchStats(t *testing.T) {
	t.Parallel()
	for _, d := range dialects() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			clk := &clock{now: time.Now()}
			tel := newTelemetry(t, otelwharf.Options{Now: clk.Now})
			drv := openDriver(t, d.database(t), wharf.Options{})
			ob := drv.Outbox()
			ctx := t.Context()

			// 1 dead, 1 leased, 3 ready, 2 scheduled.
			_, err := ob.Enqueue(ctx, msg("g.x"), msg("g.x"))
			require.NoError(t, err)
			claimed, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 2, Lease: time.Hour})
			require.NoError(t, err)
			require.Len(t, claimed, 2)
			require.NoError(t, ob.DeadLetter(ctx, claimed[0].Claim(), "test"))
			_, err = ob.Enqueue(ctx, msg("g.x"), msg("g.x"), msg("g.x"))
			require.NoError(t, err)
			later := msg("g.x")
			later.AvailableAt = time.Now().Add(time.Hour)
			_, err = ob.Enqueue(ctx, later, later)
			require.NoError(t, err)

			clk.Set(time.Now().Add(time.Second)) // a second after the enqueues
			admin := &countingAdmin{OutboxAdmin: ob}
			const interval = time.Minute
			reg, err := tel.inst.ObserveOutbox(admin, otelwharf.OutboxGaugeOptions{Interval: interval,
				Attributes: []attribute.KeyValue{attribute.String("wharf.outbox", "main")}})
			require.NoError(t, err)

			want, err := ob.Stats(ctx)
			require.NoError(t, err)
			require.Equal(t, ports.OutboxStats{Ready: 3, Scheduled: 2, Leased: 1, Dead: 1, OldestReady: want.OldestReady}, want)
			got, age := gauges(t, tel)
			require.Equal(t, map[string]int64{"ready": 3, "scheduled": 2, "leased": 1, "dead": 1}, got)
			require.InDelta(t, clk.Now().Sub(want.OldestReady).Seconds(), age, 1e-6, "age of the oldest ready message at the sample")
			require.Greater(t, age, 1.0)
			require.Equal(t, int64(1), admin.calls.Load())

			// Within the interval, collections (concurrent ones too) reuse the
			// sample.
			_, err = ob.Enqueue(ctx, msg("g.x"))
			require.NoError(t, err)
			clk.Advance(interval / 2)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					var rm metricdata.ResourceMetrics
					require.NoError(t, tel.reader.Collect(context.Background(), &rm))
				})
			}
			wg.Wait()
			got, age2 := gauges(t, tel)
			require.Equal(t, 3, int(got["ready"]), "the cached sample")
			require.Equal(t, age, age2)
			require.Equal(t, int64(1), admin.calls.Load(), "one Stats per interval, however many collections")

			// After it, a new sample.
			clk.Advance(interval / 2)
			got, _ = gauges(t, tel)
			require.Equal(t, 4, int(got["ready"]))
			require.Equal(t, int64(2), admin.calls.Load())

			// A failed sample reports nothing (never stale values) until
			// the next interval brings a good one.
			admin.fail.Store(true)
			clk.Advance(interval)
			requireNoGauges(t, tel)
			requireNoGauges(t, tel)
			require.Equal(t, int64(3), admin.calls.Load(), "a failure is not retried within the interval")
			admin.fail.Store(false)
			clk.Advance(interval)
			got, _ = gauges(t, tel)
			require.Equal(t, 4, int(got["ready"]))

			require.NoError(t, reg.Unregister())
			requireNoGauges(t, tel)
		})
	}
}

// gauges collects the outbox gauges: messages by state, and the age.
func gauges(t *testing.T, tel *telemetry) (map[string]int64, float64) {
	t.Helper()
	ms := tel.collect(t)
	g, ok := ms[otelwharf.MetricOutboxMessages].Data.(metricdata.Gauge[int64])
	require.True(t, ok, "%s is an int64 gauge", otelwharf.MetricOutboxMessages)
	out := map[string]int64{}
	for _, dp := range g.DataPoints {
		state, _ := dp.Attributes.Value("wharf.outbox.state")
		outbox, _ := dp.Attributes.Value("wharf.outbox")
		require.Equal(t, "main", outbox.AsString(), "the extra attributes")
		out[state.AsString()] = dp.Value
	}
	age, ok := ms[otelwharf.MetricOldestReadyAge].Data.(metricdata.Gauge[float64])
	require.True(t, ok, "%s is a float64 gauge", otelwharf.MetricOldestReadyAge)
	require.Len(t, age.DataPoints, 1)
	return out, age.DataPoints[0].Value
}

func requireNoGauges(t *testing.T, tel *telemetry) {
	t.Helper()
	ms := tel.collect(t)
	for _, name := range []string{otelwharf.MetricOutboxMessages, otelwharf.MetricOldestReadyAge} {
		if m, ok := ms[name]; ok {
			switch g := m.Data.(type) {
			case metricdata.Gauge[int64]:
				require.Empty(t, g.DataPoints, name)
			case metricdata.Gauge[float64]:
				require.Empty(t, g.DataPoints, name)
			}
		}
	}
}

func TestInvalidOptionsAreErrors(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t, otelwharf.Options{})
	admin := &countingAdmin{}
	cases := []struct {
		name   string
		outbox ports.OutboxAdmin
		opts   otelwharf.OutboxGaugeOptions
		want   string
	}{
		{"NilOutbox", nil, otelwharf.OutboxGaugeOptions{}, "nil outbox"},
		{"NegativeInterval", admin, otelwharf.OutboxGaugeOptions{Interval: -time.Second}, "Interval -1s is negative"},
		{"NegativeTimeout", admin, otelwharf.OutboxGaugeOptions{Timeout: -time.Second}, "Timeout -1s is negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			reg, err := tel.inst.ObserveOutbox(c.outbox, c.opts)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, c.want)
			require.Nil(t, reg)
		})
	}
}
