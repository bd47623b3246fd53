package otelwharf_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/otelwharf"
)

func TestZeroOptionsUseTheGlobalProviders(t *testing.T) {
	// Not parallel: it sets OpenTelemetry's globals (the other tests pass
	// their providers explicitly).
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	inst, err := otelwharf.New(otelwharf.Options{}) // before the globals are set: they are delegated to
	require.NoError(t, err)
	otel.SetTracerProvider(tp)
	otel.SetMeterProvider(mp)

	deliver := func(topic string) handled {
		drv := openDriver(t, "file:"+filepath.Join(t.TempDir(), "g.db"), wharf.Options{Hooks: inst.Hooks()})
		member, err := baggage.NewMember("tenant", "acme")
		require.NoError(t, err)
		bag, err := baggage.New(member)
		require.NoError(t, err)
		ctx, span := otel.Tracer("test").Start(baggage.ContextWithBaggage(t.Context(), bag), "request")
		require.NoError(t, txUnitOfWork(t, drv).Transaction(ctx, func(ctx context.Context, tx wharf.Tx) error {
			_, err := tx.Outbox.Enqueue(ctx, msg(topic))
			return err
		}))
		span.End()
		hs, seen := recordingHandlers(t, topic)
		r, err := relay.New(drv.Outbox(), hs, relay.Options{Hooks: inst.Hooks()})
		require.NoError(t, err)
		res, err := r.Drain(t.Context())
		require.NoError(t, err)
		require.Equal(t, 1, res.Delivered)
		h := seen()[topic]
		require.Equal(t, span.SpanContext().TraceID(), h.span.TraceID(), "the global tracer provider makes the spans")
		return h
	}

	// OpenTelemetry's default global propagator carries nothing: W3C trace
	// context and baggage are used instead.
	h := deliver("g.default")
	require.NotEmpty(t, h.header)
	require.Equal(t, "acme", h.tenant)

	// A global propagator, once set, is used: this one carries no baggage.
	prev := otel.GetTextMapPropagator()
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(prev) })
	h = deliver("g.tracecontext")
	require.NotEmpty(t, h.header)
	require.Empty(t, h.tenant, "the global propagator carries no baggage")

	ms := (&telemetry{reader: reader}).collect(t)
	require.Equal(t, map[string]int64{"g.default": 1, "g.tracecontext": 1},
		sumsBy(t, ms[otelwharf.MetricEnqueued], "messaging.destination.name"), "the global meter provider")
}

func TestNoopProvidersRecordNothingAndDeliver(t *testing.T) {
	t.Parallel()
	inst, err := otelwharf.New(otelwharf.Options{TracerProvider: tracenoop.NewTracerProvider(), MeterProvider: metricnoop.NewMeterProvider()})
	require.NoError(t, err)
	drv := openDriver(t, "file:"+filepath.Join(t.TempDir(), "n.db"), wharf.Options{Hooks: inst.Hooks()})
	require.NoError(t, txUnitOfWork(t, drv).Transaction(t.Context(), func(ctx context.Context, tx wharf.Tx) error {
		_, err := tx.Outbox.Enqueue(ctx, msg("n.x"))
		return err
	}))
	hs, seen := recordingHandlers(t, "n.x")
	r, err := relay.New(drv.Outbox(), hs, relay.Options{Hooks: inst.Hooks()})
	require.NoError(t, err)
	res, err := r.Drain(t.Context())
	require.NoError(t, err)
	require.Equal(t, 1, res.Delivered)
	h := seen()["n.x"]
	require.Empty(t, h.header, "no span, no trace context in the headers")
	require.False(t, h.span.IsValid())
}
