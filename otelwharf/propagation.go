package otelwharf

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// globalPropagator is the global propagator, looked up at each use (the
// application may install it after New), or fallback while the global one
// carries nothing.
type globalPropagator struct {
	fallback propagation.TextMapPropagator
}

func (g globalPropagator) current() propagation.TextMapPropagator {
	p := otel.GetTextMapPropagator()
	if len(p.Fields()) == 0 {
		return g.fallback
	}
	return p
}

// Inject implements propagation.TextMapPropagator.
func (g globalPropagator) Inject(ctx context.Context, c propagation.TextMapCarrier) {
	g.current().Inject(ctx, c)
}

// Extract implements propagation.TextMapPropagator.
func (g globalPropagator) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	return g.current().Extract(ctx, c)
}

// Fields implements propagation.TextMapPropagator.
func (g globalPropagator) Fields() []string { return g.current().Fields() }

// inject is core.Hooks.Inject: the trace context of ctx (the enqueue's
// span) goes into an enqueued message's headers.
func (in *Instrumentation) inject(ctx context.Context, headers map[string]string) {
	in.prop.Inject(ctx, propagation.MapCarrier(headers))
}

// extract is core.Hooks.Extract: ctx continues the trace (and baggage) of
// a claimed message's headers.
func (in *Instrumentation) extract(ctx context.Context, headers map[string]string) context.Context {
	if len(headers) == 0 {
		return ctx
	}
	return in.prop.Extract(ctx, propagation.MapCarrier(headers))
}

// producer returns the producing span's context that extract found: a
// remote span context (the relay's own context has none, unless the
// application ran the relay in an extracted context, which is then the
// closest producer there is).
func producer(ctx context.Context) (trace.SpanContext, bool) {
	sc := trace.SpanContextFromContext(ctx)
	return sc, sc.IsValid() && sc.IsRemote()
}
