package otelwharf

import (
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/wharf-go/wharf/otelwharf"

// Options configure New. The zero value means OpenTelemetry's global
// providers and propagator.
type Options struct {
	// TracerProvider makes the spans; nil means otel.GetTracerProvider()
	// (a no-op until the application installs an SDK).
	TracerProvider trace.TracerProvider
	// MeterProvider makes the instruments; nil means
	// otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator writes the trace context into enqueued messages' headers
	// and reads it back at delivery; nil means otel.GetTextMapPropagator(),
	// or W3C trace context and baggage while the global propagator carries
	// nothing (OpenTelemetry's default), so that traces cross the outbox
	// without further setup.
	Propagator propagation.TextMapPropagator
	// LinkDeliveries starts each delivery span in a new trace, linked to
	// the producing span, instead of as its child (see the package doc).
	LinkDeliveries bool
	// Now is the clock of the enqueue→handler latency (messages carry the
	// driver's CreatedAt) and of the outbox gauges; nil means time.Now.
	// Give it the driver's clock (wharf.Options.Now).
	Now func() time.Time
	// Logger receives failures to sample the outbox gauges (at warn level,
	// at most one per sampling interval); nil means slog.Default.
	Logger *slog.Logger
}

// Instrumentation makes spans and metrics of wharf's operations. It is
// safe for concurrent use; make one per process and give its Hooks to the
// driver and to every relay.
type Instrumentation struct {
	tracer trace.Tracer
	meter  metric.Meter
	prop   propagation.TextMapPropagator
	link   bool
	now    func() time.Time
	log    *slog.Logger
	m      instruments
	names  spanNames
}

// New returns the instrumentation of opts. It fails only when the meter
// provider refuses an instrument.
func New(opts Options) (*Instrumentation, error) {
	tp := opts.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	mp := opts.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	prop := opts.Propagator
	if prop == nil {
		prop = globalPropagator{fallback: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	inst := &Instrumentation{
		tracer: tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		meter:  mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL)),
		prop:   prop,
		link:   opts.LinkDeliveries,
		now:    now,
		log:    log,
	}
	if err := inst.m.init(inst.meter); err != nil {
		return nil, fmt.Errorf("otelwharf: %w", err)
	}
	return inst, nil
}

// Hooks returns the hooks to give to the driver (wharf.Options.Hooks) and
// to every relay (relay.Options.Hooks).
func (in *Instrumentation) Hooks() core.Hooks {
	return core.Hooks{Start: in.start, Inject: in.inject, Extract: in.extract}
}

// invalidf is an error matching ports.ErrInvalidArgument.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("otelwharf: %s: %w", fmt.Sprintf(format, args...), ports.ErrInvalidArgument)
}
