package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/wharf-go/wharf/otelwharf"
)

// Environment variables of the telemetry. OpenTelemetry's own are read
// where OpenTelemetry reads them: OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES (the resource), OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG (the SDK), OTEL_EXPORTER_OTLP_ENDPOINT,
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS and the
// rest of OTEL_EXPORTER_OTLP_* (the OTLP exporter).
const (
	envTracesExporter     = "OTEL_TRACES_EXPORTER"
	envSDKDisabled        = "OTEL_SDK_DISABLED"
	envOTLPProtocol       = "OTEL_EXPORTER_OTLP_PROTOCOL"
	envOTLPTracesProtocol = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	envMetrics            = "TODO_METRICS"
)

// Trace exporters (OTEL_TRACES_EXPORTER).
const (
	tracesNone    = "none"
	tracesConsole = "console"
	tracesOTLP    = "otlp"
)

// metricsPath is where the Prometheus metrics are served.
const metricsPath = "/metrics"

// telemetryConfig configures newTelemetry.
type telemetryConfig struct {
	// Traces is the span exporter: tracesNone, tracesConsole (JSON to
	// TraceOut) or tracesOTLP (OTLP over HTTP/protobuf).
	Traces string
	// TraceOut receives the console exporter's spans.
	TraceOut io.Writer
	// Metrics serves the metrics at metricsPath in the Prometheus format.
	Metrics bool
}

// tracesFromEnv reads OTEL_TRACES_EXPORTER (default none; OTEL_SDK_DISABLED=true
// means none) and checks that an OTLP exporter is asked for over
// HTTP/protobuf, the one protocol the example includes.
func tracesFromEnv(getenv func(string) string) (string, error) {
	if strings.EqualFold(getenv(envSDKDisabled), "true") {
		return tracesNone, nil
	}
	v := strings.ToLower(strings.TrimSpace(getenv(envTracesExporter)))
	switch v {
	case "", tracesNone:
		return tracesNone, nil
	case tracesConsole:
		return tracesConsole, nil
	case tracesOTLP:
		for _, env := range []string{envOTLPTracesProtocol, envOTLPProtocol} {
			if p := getenv(env); p != "" && p != "http/protobuf" {
				return "", fmt.Errorf("%s=%s: this app exports OTLP over http/protobuf only; unset it or set it to http/protobuf (the collector's port 4318)", env, p)
			}
		}
		return tracesOTLP, nil
	}
	return "", fmt.Errorf("%s=%q: use none, console or otlp", envTracesExporter, v)
}

// telemetry is the app's OpenTelemetry pipeline: the tracer provider with
// its exporter, the meter provider read by the Prometheus exporter,
// otelwharf's instrumentation on both, and the HTTP middleware.
type telemetry struct {
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	propagator     propagation.TextMapPropagator
	inst           *otelwharf.Instrumentation
	metrics        http.Handler // nil when metrics are off
	shutdown       []func(context.Context) error
}

// newTelemetry builds the pipeline of cfg. Nothing is global: tests run
// several apps in one process.
func newTelemetry(ctx context.Context, cfg telemetryConfig) (_ *telemetry, err error) {
	t := &telemetry{
		tracerProvider: tracenoop.NewTracerProvider(),
		meterProvider:  metricnoop.NewMeterProvider(),
		propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Shutdown(context.Background()))
		}
	}()
	// The service's name, unless OTEL_SERVICE_NAME or
	// OTEL_RESOURCE_ATTRIBUTES say otherwise.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName("todo")), resource.WithFromEnv())
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	var span sdktrace.TracerProviderOption
	switch cfg.Traces {
	case tracesConsole:
		exp, err := stdouttrace.New(stdouttrace.WithWriter(cfg.TraceOut), stdouttrace.WithPrettyPrint())
		if err != nil {
			return nil, fmt.Errorf("console trace exporter: %w", err)
		}
		span = sdktrace.WithSyncer(exp) // each span as it ends: for reading along
	case tracesOTLP:
		exp, err := otlptracehttp.New(ctx) // configured by OTEL_EXPORTER_OTLP_*
		if err != nil {
			return nil, fmt.Errorf("OTLP trace exporter: %w", err)
		}
		span = sdktrace.WithBatcher(exp)
	}
	if span != nil {
		tp := sdktrace.NewTracerProvider(span, sdktrace.WithResource(res))
		t.tracerProvider = tp
		t.shutdown = append(t.shutdown, tp.Shutdown)
	}
	if cfg.Metrics {
		reg := promclient.NewRegistry()
		exp, err := otelprom.New(otelprom.WithRegisterer(reg))
		if err != nil {
			return nil, fmt.Errorf("prometheus exporter: %w", err)
		}
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))
		t.meterProvider = mp
		t.shutdown = append(t.shutdown, mp.Shutdown)
		t.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	t.inst, err = otelwharf.New(otelwharf.Options{TracerProvider: t.tracerProvider, MeterProvider: t.meterProvider, Propagator: t.propagator})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// nameSpan names the request's span after its route ("POST /todos/{id}"),
// as the HTTP conventions ask (the middleware starts it before routing),
// and gives the route to the request's HTTP metrics.
func nameSpan(r *http.Request, route string) {
	span := trace.SpanFromContext(r.Context())
	span.SetName(r.Method + " " + route)
	span.SetAttributes(semconv.HTTPRoute(route))
	if l, ok := otelhttp.LabelerFromContext(r.Context()); ok {
		l.Add(semconv.HTTPRoute(route))
	}
}

// handler wraps the API: a server span per request (continuing a
// traceparent the client sent) and HTTP metrics, and the metrics endpoint
// beside the API.
func (t *telemetry) handler(api http.Handler) http.Handler {
	traced := otelhttp.NewHandler(api, "todo",
		otelhttp.WithTracerProvider(t.tracerProvider), otelhttp.WithMeterProvider(t.meterProvider),
		otelhttp.WithPropagators(t.propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }))
	if t.metrics == nil {
		return traced
	}
	// Not a ServeMux: its pattern ("/") would become every request's route.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == metricsPath && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			t.metrics.ServeHTTP(w, r)
			return
		}
		traced.ServeHTTP(w, r)
	})
}

// Shutdown flushes and stops the providers.
func (t *telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	t.shutdown = nil
	return errors.Join(errs...)
}
