package otelwharf_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/otelwharf"
	"github.com/wharf-go/wharf/ports"
)

// The overhead of the instrumentation, side by side (make bench-otel):
//
//   - NoHooks: no core.Hooks at all;
//   - NoopProvider: otelwharf installed on OpenTelemetry's global
//     providers with no SDK behind them (what an application gets with
//     otelwharf wired but no SDK);
//   - SDKAllSpans: the SDK recording every span (always sampled, batched
//     to an exporter that drops them) and every metric (a manual reader).
type benchVariant struct {
	name  string
	hooks func(b *testing.B) core.Hooks
}

func benchVariants() []benchVariant {
	return []benchVariant{
		{"NoHooks", func(*testing.B) core.Hooks { return core.Hooks{} }},
		{"NoopProvider", func(b *testing.B) core.Hooks {
			// Zero options: OpenTelemetry's global providers, which no SDK
			// was installed behind (benchmarks run no test that sets them).
			inst, err := otelwharf.New(otelwharf.Options{})
			require.NoError(b, err)
			return inst.Hooks()
		}},
		{"SDKAllSpans", func(b *testing.B) core.Hooks {
			tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()),
				sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			b.Cleanup(func() {
				_ = tp.Shutdown(context.Background())
				_ = mp.Shutdown(context.Background())
			})
			inst, err := otelwharf.New(otelwharf.Options{TracerProvider: tp, MeterProvider: mp, Propagator: w3c})
			require.NoError(b, err)
			return inst.Hooks()
		}},
	}
}

// benchDialects are SQLite and PostgreSQL.
func benchDialects() []dialectCase {
	var out []dialectCase
	for _, d := range dialects() {
		if d.dialect != "mysql" {
			out = append(out, d)
		}
	}
	return out
}

// BenchmarkDrain delivers b.N messages (enqueued beforehand, untimed) with
// a relay whose handler does nothing: the instrumentation's share of a
// relay's own cost, per message.
func BenchmarkDrain(b *testing.B) {
	for _, d := range benchDialects() {
		for _, v := range benchVariants() {
			b.Run(d.name+"/"+v.name, func(b *testing.B) {
				hooks := v.hooks(b)
				drv := openDriver(b, d.database(b), wharf.Options{Hooks: hooks})
				ctx := context.Background()
				const batch = 500
				for n := 0; n < b.N; n += batch {
					msgs := make([]ports.OutboxMessage, min(batch, b.N-n))
					for i := range msgs {
						msgs[i] = msg("bench.drain")
					}
					_, err := drv.Outbox().Enqueue(ctx, msgs...)
					require.NoError(b, err)
				}
				hs := relay.NewHandlers()
				require.NoError(b, hs.Handle("bench.drain", func(context.Context, ports.ClaimedMessage) error { return nil }, relay.TopicOptions{}))
				r, err := relay.New(drv.Outbox(), hs, relay.Options{Hooks: hooks})
				require.NoError(b, err)
				m := startMeasure(b)
				delivered := 0
				for delivered < b.N {
					res, err := r.Drain(ctx)
					require.NoError(b, err)
					require.Positive(b, res.Delivered, "a pass delivered nothing: %+v", res)
					delivered += res.Delivered
				}
				m.stop()
				require.Equal(b, b.N, delivered)
			})
		}
	}
}

// BenchmarkEnqueue runs b.N units of work that each enqueue one message:
// the instrumentation's share of a write transaction.
func BenchmarkEnqueue(b *testing.B) {
	for _, d := range benchDialects() {
		for _, v := range benchVariants() {
			b.Run(d.name+"/"+v.name, func(b *testing.B) {
				drv := openDriver(b, d.database(b), wharf.Options{Hooks: v.hooks(b)})
				uow := txUnitOfWork(b, drv)
				ctx := context.Background()
				m := startMeasure(b)
				for range b.N {
					err := uow.Transaction(ctx, func(ctx context.Context, tx wharf.Tx) error {
						_, err := tx.Outbox.Enqueue(ctx, msg("bench.enqueue"))
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				m.stop()
			})
		}
	}
}

// measure times a benchmark's loop: wall time (msgs/s) and this process's
// CPU time per message (cpu-us/msg: user and system, every goroutine, the
// garbage collector included; a database server's CPU is not in it). The
// machine's other load moves the first much more than the second.
type measure struct {
	b   *testing.B
	cpu time.Duration
}

func startMeasure(b *testing.B) *measure {
	b.ResetTimer()
	return &measure{b: b, cpu: processCPU(b)}
}

func (m *measure) stop() {
	m.b.StopTimer()
	cpu := processCPU(m.b) - m.cpu
	m.b.ReportMetric(float64(m.b.N)/m.b.Elapsed().Seconds(), "msgs/s")
	m.b.ReportMetric(float64(cpu.Microseconds())/float64(m.b.N), "cpu-us/msg")
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
