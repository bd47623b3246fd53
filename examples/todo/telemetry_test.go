package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
)

// startAppConfigured is startApp with cfg changed by configure.
func startAppConfigured(t *testing.T, d dialectCase, configure func(cfg *config)) *testApp {
	t.Helper()
	cfg := config{
		Database: d.dialect, URL: d.database(t), URLSource: "test",
		Logger:               testLogger(t),
		RelayPollInterval:    10 * time.Millisecond,
		RelayMaxPollInterval: 50 * time.Millisecond,
	}
	configure(&cfg)
	srv, err := newServer(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, srv.Close(ctx))
	})
	hs := httptest.NewServer(srv.handler)
	t.Cleanup(hs.Close)
	return &testApp{t: t, srv: srv, url: hs.URL, c: hs.Client()}
}

// consoleSpan is the part of the console exporter's JSON the tests read.
type consoleSpan struct {
	Name        string
	SpanKind    int
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct {
		TraceID, SpanID string
		Remote          bool
	}
	Links []struct {
		SpanContext struct{ TraceID, SpanID string }
	}
	Attributes []struct {
		Key   string
		Value struct{ Value any }
	}
}

func (s consoleSpan) attr(key string) any {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.Value
		}
	}
	return nil
}

// parseSpans decodes the console exporter's output.
func parseSpans(t *testing.T, out string) []consoleSpan {
	t.Helper()
	var spans []consoleSpan
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var s consoleSpan
		err := dec.Decode(&s)
		if errors.Is(err, io.EOF) {
			return spans
		}
		require.NoError(t, err)
		spans = append(spans, s)
	}
}

func findSpan(spans []consoleSpan, name string) (consoleSpan, bool) {
	for _, s := range spans {
		if s.Name == name {
			return s, true
		}
	}
	return consoleSpan{}, false
}

// TestOneTraceFromTheRequestToTheDelivery creates a todo with the console
// exporter on, and follows the trace: the request's server span, the
// idempotency reservation and the transaction under it, the enqueue of
// todo.created in the transaction, and the relay's delivery of it as a
// child of the enqueue. Then /metrics shows the same story.
func TestOneTraceFromTheRequestToTheDelivery(t *testing.T) {
	t.Parallel()
	for _, d := range dialects() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			out := &syncBuffer{}
			a := startAppConfigured(t, d, func(cfg *config) {
				cfg.Telemetry = telemetryConfig{Traces: tracesConsole, TraceOut: out, Metrics: true}
			})
			td := a.create("trace me", key(core.NewID()))
			a.awaitDelivered()
			// The delivery's span ends once its outcome is recorded, just
			// after the outbox row is gone.
			a.await("the delivery span", func() bool {
				_, ok := findSpan(parseSpans(t, out.String()), "process todo.created")
				return ok
			})

			spans := parseSpans(t, out.String())
			req, ok := findSpan(spans, "POST /todos")
			require.True(t, ok, "the request's span is named after its route")
			require.Equal(t, 2, req.SpanKind, "server")
			require.Equal(t, "/todos", req.attr("http.route"))
			require.Equal(t, "0000000000000000", req.Parent.SpanID, "the request starts the trace")
			trace := req.SpanContext.TraceID
			child := func(name, parent string) consoleSpan {
				t.Helper()
				s, ok := findSpan(spans, name)
				require.True(t, ok, "a span %q", name)
				require.Equal(t, trace, s.SpanContext.TraceID, "%s is in the request's trace", name)
				require.Equal(t, parent, s.Parent.SpanID, "the parent of %s", name)
				return s
			}
			child("reserve idempotency_records", req.SpanContext.SpanID)
			tx := child("wharf transaction", req.SpanContext.SpanID)
			require.Equal(t, "committed", tx.attr("wharf.transaction.outcome"))
			send := child("send todo.created", tx.SpanContext.SpanID)
			process := child("process todo.created", send.SpanContext.SpanID)
			require.True(t, process.Parent.Remote, "the delivery continues the trace from the message's headers")
			require.Len(t, process.Links, 1)
			require.Equal(t, send.SpanContext.SpanID, process.Links[0].SpanContext.SpanID)
			require.Equal(t, "delivered", process.attr("wharf.delivery.outcome"))
			require.NotEmpty(t, td.ID)

			r := a.mustDo(http.MethodGet, metricsPath, "", nil)
			require.Equal(t, http.StatusOK, r.status)
			body := string(r.body)
			for _, want := range []string{
				`wharf_outbox_enqueued_total\{[^}]*messaging_destination_name="todo.created"[^}]*\} 1`,
				`wharf_relay_deliveries_total\{[^}]*messaging_destination_name="todo.created"[^}]*wharf_delivery_outcome="delivered"[^}]*\} 1`,
				`wharf_relay_handler_duration_seconds_count\{[^}]*messaging_destination_name="todo.created"[^}]*\} 1`,
				`wharf_relay_latency_seconds_count\{[^}]*messaging_destination_name="todo.created"[^}]*\} 1`,
				`wharf_idempotency_reservations_total\{[^}]*wharf_idempotency_namespace="todo-api"[^}]*wharf_idempotency_outcome="reserved"[^}]*\} 1`,
				`wharf_outbox_messages\{[^}]*wharf_outbox_state="ready"[^}]*\} 0`,
				`wharf_outbox_oldest_ready_age_seconds\{[^}]*\} 0`,
				`http_server_request_duration_seconds_count\{[^}]*http_route="/todos"[^}]*\} 1`,
			} {
				require.Regexp(t, regexp.MustCompile(want), body)
			}
		})
	}
}

func TestQueryLogSwitch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		queryLog   string
		wantLogged bool
		wantValue  bool
	}{
		{"OffLogsNoStatement", queryLogOff, false, false},
		{"OnLogsStatementsWithoutValues", queryLogOn, true, false},
		{"ParamsShowsValues", queryLogParams, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			a := startAppConfigured(t, dialects()[0], func(cfg *config) {
				cfg.QueryLog = tt.queryLog
				cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
			})
			const title = "a title worth redacting 7c1d"
			a.create(title, nil)
			a.awaitDelivered()
			out := logs.String()
			require.Equal(t, tt.wantLogged, strings.Contains(out, `msg="wharf: query"`), "statements logged")
			require.Equal(t, tt.wantLogged, strings.Contains(out, "port=outbox.enqueue"), "the outbox's enqueue statement")
			require.Equal(t, tt.wantValue, strings.Contains(out, title), "the title as a parameter value")
		})
	}
}

func TestTelemetryConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		wantTraces string
		wantErr    string
		wantQuery  string
		noMetrics  bool
	}{
		{name: "Defaults", wantTraces: tracesNone, wantQuery: queryLogOff},
		{name: "ConsoleTraces", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, wantTraces: tracesConsole, wantQuery: queryLogOff},
		{name: "OTLPOverHTTP", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, wantTraces: tracesOTLP, wantQuery: queryLogOff},
		{name: "OTLPOverGRPCIsRefused", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, wantErr: "http/protobuf only"},
		{name: "UnknownExporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: `OTEL_TRACES_EXPORTER="zipkin": use none, console or otlp`},
		{name: "SDKDisabled", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, wantTraces: tracesNone, wantQuery: queryLogOff},
		{name: "MetricsOff", args: []string{"-metrics=false"}, wantTraces: tracesNone, wantQuery: queryLogOff, noMetrics: true},
		{name: "MetricsOffFromEnvironment", env: map[string]string{"TODO_METRICS": "false"}, wantTraces: tracesNone, wantQuery: queryLogOff, noMetrics: true},
		{name: "QueryLogFromEnvironment", env: map[string]string{"TODO_QUERY_LOG": "on"}, wantTraces: tracesNone, wantQuery: queryLogOn},
		{name: "QueryLogFlag", args: []string{"-query-log", "params"}, wantTraces: tracesNone, wantQuery: queryLogParams},
		{name: "BadQueryLog", args: []string{"-query-log", "loud"}, wantErr: `query log "loud": use off, on or params`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			cfg, err := loadConfig(tt.args, getenvFrom(tt.env), &out)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantTraces, cfg.Telemetry.Traces)
			require.Equal(t, !tt.noMetrics, cfg.Telemetry.Metrics)
			require.Equal(t, tt.wantQuery, cfg.QueryLog)
		})
	}
}
