package otelwharf_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/otelwharf"
	"github.com/wharf-go/wharf/ports"
)

// The child relay process: the test binary run again with these variables
// set delivers the outbox of the URL and exports its spans to the file, as
// JSON (the stdout exporter's format).
const (
	childURLEnv   = "OTELWHARF_CHILD_RELAY_URL"
	childSpansEnv = "OTELWHARF_CHILD_RELAY_SPANS"
	childTopic    = "proc.hop"
	handledEvent  = "handled in the child"
)

func TestMain(m *testing.M) {
	if url := os.Getenv(childURLEnv); url != "" {
		if err := childRelay(url, os.Getenv(childSpansEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child relay:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// childRelay drains the outbox at url once, with its spans exported to
// the file spans.
func childRelay(url, spans string) (err error) {
	ctx := context.Background()
	f, err := os.Create(spans)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	exp, err := stdouttrace.New(stdouttrace.WithWriter(f))
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { err = errors.Join(err, tp.Shutdown(ctx)) }()
	inst, err := otelwharf.New(otelwharf.Options{TracerProvider: tp, MeterProvider: metricnoop.NewMeterProvider(), Propagator: w3c})
	if err != nil {
		return err
	}
	drv, err := wharf.Open(ctx, url, wharf.Options{Hooks: inst.Hooks()})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, drv.Close()) }()
	hs := relay.NewHandlers()
	if err := hs.Handle(childTopic, func(ctx context.Context, _ ports.ClaimedMessage) error {
		trace.SpanFromContext(ctx).AddEvent(handledEvent)
		return nil
	}, relay.TopicOptions{}); err != nil {
		return err
	}
	r, err := relay.New(drv.Outbox(), hs, relay.Options{Hooks: inst.Hooks()})
	if err != nil {
		return err
	}
	res, err := r.Drain(ctx)
	if err != nil {
		return err
	}
	if res.Delivered != 1 {
		return fmt.Errorf("delivered %d messages, want 1: %+v", res.Delivered, res)
	}
	return nil
}

// exportedSpan is the part of the stdout exporter's JSON that the test reads.
type exportedSpan struct {
	Name        string
	SpanContext exportedContext
	Parent      exportedContext
	SpanKind    int
	Links       []struct{ SpanContext exportedContext }
	Events      []struct{ Name string }
	Attributes  []struct {
		Key   string
		Value struct{ Value any }
	}
}

type exportedContext struct {
	TraceID string
	SpanID  string
	Remote  bool
}

func (s exportedSpan) attr(key string) any {
	for _, a := range s.Attributes {
		if a.Key == key {
			return a.Value.Value
		}
	}
	return nil
}

func TestTraceCrossesProcesses(t *testing.T) {
	t.Parallel()
	for _, d := range dialects() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			url := d.database(t)
			tel := newTelemetry(t, otelwharf.Options{})
			drv := openDriver(t, url, wharf.Options{Hooks: tel.inst.Hooks()})

			ctx, req := tel.tp.Tracer("test").Start(t.Context(), "POST /hop", trace.WithSpanKind(trace.SpanKindServer))
			var ids []string
			require.NoError(t, txUnitOfWork(t, drv).Transaction(ctx, func(ctx context.Context, tx wharf.Tx) (err error) {
				ids, err = tx.Outbox.Enqueue(ctx, msg(childTopic))
				return err
			}))
			req.End()
			send := tel.one(t, "send "+childTopic).SpanContext()

			spansFile := filepath.Join(t.TempDir(), "spans.json")
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childURLEnv+"="+url, childSpansEnv+"="+spansFile)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "child relay: %s", out)

			f, err := os.Open(spansFile)
			require.NoError(t, err)
			defer func() { _ = f.Close() }()
			var process []exportedSpan
			dec := json.NewDecoder(f)
			for {
				var s exportedSpan
				if err := dec.Decode(&s); errors.Is(err, io.EOF) {
					break
				} else {
					require.NoError(t, err)
				}
				if s.Name == "process "+childTopic {
					process = append(process, s)
				}
			}
			require.Len(t, process, 1, "one delivery span in the child")
			p := process[0]
			require.Equal(t, req.SpanContext().TraceID().String(), p.SpanContext.TraceID, "the child continues the request's trace")
			require.Equal(t, send.SpanID().String(), p.Parent.SpanID, "the delivery is a child of the enqueue")
			require.True(t, p.Parent.Remote)
			require.Len(t, p.Links, 1)
			require.Equal(t, send.SpanID().String(), p.Links[0].SpanContext.SpanID, "and links to it")
			require.Equal(t, send.TraceID().String(), p.Links[0].SpanContext.TraceID)
			require.Equal(t, int(trace.SpanKindConsumer), p.SpanKind)
			require.Equal(t, ids[0], p.attr("messaging.message.id"))
			require.Equal(t, "delivered", p.attr("wharf.delivery.outcome"))
			require.Len(t, p.Events, 1)
			require.Equal(t, handledEvent, p.Events[0].Name, "the handler ran in the delivery span")
		})
	}
}
