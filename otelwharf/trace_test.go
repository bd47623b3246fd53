package otelwharf_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/otelwharf"
	"github.com/wharf-go/wharf/ports"
)

// handled is what a handler saw.
type handled struct {
	span      trace.SpanContext
	tenant    string
	header    string
	messageID string
}

// recordingHandlers handle topics by recording what each handler saw.
func recordingHandlers(t *testing.T, topics ...string) (*relay.Handlers, func() map[string]handled) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]handled{}
	hs := relay.NewHandlers()
	for _, topic := range topics {
		require.NoError(t, hs.Handle(topic, func(ctx context.Context, m ports.ClaimedMessage) error {
			mu.Lock()
			defer mu.Unlock()
			seen[m.Topic] = handled{span: trace.SpanContextFromContext(ctx), tenant: baggage.FromContext(ctx).Member("tenant").Value(),
				header: m.Headers["traceparent"], messageID: m.ID}
			return nil
		}, relay.TopicOptions{}))
	}
	return hs, func() map[string]handled {
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
}

func TestTraceRunsFromTheRequestToTheHandler(t *testing.T) {
	t.Parallel()
	modes := []struct {
		name string
		link bool
	}{
		{"DeliveryIsAChildOfTheProducer", false},
		{"DeliveryStartsATraceLinkedToTheProducer", true},
	}
	for _, d := range dialects() {
		for _, mode := range modes {
			t.Run(d.name+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				tel := newTelemetry(t, otelwharf.Options{LinkDeliveries: mode.link})
				drv := openDriver(t, d.database(t), wharf.Options{Hooks: tel.inst.Hooks()})
				uow := txUnitOfWork(t, drv)

				// The "HTTP request": a server span with baggage.
				member, err := baggage.NewMember("tenant", "acme")
				require.NoError(t, err)
				bag, err := baggage.New(member)
				require.NoError(t, err)
				ctx := baggage.ContextWithBaggage(t.Context(), bag)
				ctx, req := tel.tp.Tracer("test").Start(ctx, "POST /todos", trace.WithSpanKind(trace.SpanKindServer))
				var ids []string
				require.NoError(t, uow.Transaction(ctx, func(ctx context.Context, tx wharf.Tx) error {
					if _, err := tx.Idempotency.Reserve(ctx, reserveReq("otel.todos", "k1", "fp")); err != nil {
						return err
					}
					ids, err = tx.Outbox.Enqueue(ctx, msg("otel.a"), msg("otel.b"))
					return err
				}))
				req.End()

				hs, seen := recordingHandlers(t, "otel.a", "otel.b")
				r, err := relay.New(drv.Outbox(), hs, relay.Options{Hooks: tel.inst.Hooks()})
				require.NoError(t, err)
				res, err := r.Drain(t.Context())
				require.NoError(t, err)
				require.Equal(t, 2, res.Delivered)

				reqSC := req.SpanContext()
				tx := tel.one(t, "wharf transaction")
				require.Equal(t, reqSC.SpanID(), tx.Parent().SpanID(), "the transaction runs in the request")
				require.Equal(t, trace.SpanKindInternal, tx.SpanKind())
				txAttrs := attrs(tx.Attributes())
				require.Equal(t, dbSystemName(d.dialect), txAttrs["db.system.name"].AsString())
				require.Equal(t, "committed", txAttrs["wharf.transaction.outcome"].AsString())
				require.Equal(t, int64(1), txAttrs["wharf.transaction.attempts"].AsInt64())
				require.Equal(t, codes.Unset, tx.Status().Code)

				res1 := tel.one(t, "reserve idempotency_records")
				require.Equal(t, tx.SpanContext().SpanID(), res1.Parent().SpanID(), "the reservation runs in the transaction")
				require.Equal(t, trace.SpanKindClient, res1.SpanKind())
				resAttrs := attrs(res1.Attributes())
				require.Equal(t, "reserved", resAttrs["wharf.idempotency.outcome"].AsString())
				require.Equal(t, "otel.todos", resAttrs["wharf.idempotency.namespace"].AsString())
				require.Equal(t, "reserve", resAttrs["db.operation.name"].AsString())

				send := tel.one(t, "send")
				require.Equal(t, tx.SpanContext().SpanID(), send.Parent().SpanID(), "the enqueue runs in the transaction")
				require.Equal(t, trace.SpanKindProducer, send.SpanKind())
				sendAttrs := attrs(send.Attributes())
				require.Equal(t, "wharf", sendAttrs["messaging.system"].AsString())
				require.Equal(t, "send", sendAttrs["messaging.operation.type"].AsString())
				require.Equal(t, "enqueue", sendAttrs["messaging.operation.name"].AsString())
				require.Equal(t, []string{"otel.a", "otel.b"}, sendAttrs["wharf.topics"].AsStringSlice())
				require.Equal(t, int64(2), sendAttrs["messaging.batch.message_count"].AsInt64())
				require.Equal(t, "outbox_messages", sendAttrs["db.collection.name"].AsString())
				sendSC := send.SpanContext()
				require.Equal(t, reqSC.TraceID(), sendSC.TraceID())

				claim := tel.one(t, "receive")
				require.Equal(t, trace.SpanKindClient, claim.SpanKind())
				claimAttrs := attrs(claim.Attributes())
				require.Equal(t, "receive", claimAttrs["messaging.operation.type"].AsString())
				require.Equal(t, int64(2), claimAttrs["messaging.batch.message_count"].AsInt64())
				require.Equal(t, int64(relay.DefaultBatchSize), claimAttrs["wharf.claim.limit"].AsInt64())

				got := seen()
				for i, topic := range []string{"otel.a", "otel.b"} {
					p := tel.one(t, "process "+topic)
					require.Equal(t, trace.SpanKindConsumer, p.SpanKind())
					require.Len(t, p.Links(), 1, "the delivery links to the producer")
					require.Equal(t, sendSC.SpanID(), p.Links()[0].SpanContext.SpanID())
					require.Equal(t, sendSC.TraceID(), p.Links()[0].SpanContext.TraceID())
					if mode.link {
						require.NotEqual(t, reqSC.TraceID(), p.SpanContext().TraceID(), "a trace of its own")
						require.False(t, p.Parent().IsValid(), "a root span")
					} else {
						require.Equal(t, reqSC.TraceID(), p.SpanContext().TraceID(), "one trace from the request to the handler")
						require.Equal(t, sendSC.SpanID(), p.Parent().SpanID(), "the delivery is a child of the enqueue")
						require.True(t, p.Parent().IsRemote(), "the parent came through the message's headers")
					}
					pAttrs := attrs(p.Attributes())
					require.Equal(t, topic, pAttrs["messaging.destination.name"].AsString())
					require.Equal(t, "process", pAttrs["messaging.operation.type"].AsString())
					require.Equal(t, ids[i], pAttrs["messaging.message.id"].AsString())
					require.Equal(t, int64(1), pAttrs["wharf.message.attempt"].AsInt64())
					require.Equal(t, "delivered", pAttrs["wharf.delivery.outcome"].AsString())
					require.Equal(t, codes.Unset, p.Status().Code)

					h := got[topic]
					require.Equal(t, p.SpanContext(), h.span, "the handler runs in the delivery's span")
					require.Equal(t, "acme", h.tenant, "baggage crosses the outbox")
					require.Equal(t, ids[i], h.messageID)
					require.Equal(t, "00-"+sendSC.TraceID().String()+"-"+sendSC.SpanID().String()+"-01", h.header,
						"the header carries the producing span")
				}
			})
		}
	}
}

func TestSpansOfFailures(t *testing.T) {
	t.Parallel()
	for _, d := range dialects() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			tel := newTelemetry(t, otelwharf.Options{})
			drv := openDriver(t, d.database(t), wharf.Options{Hooks: tel.inst.Hooks()})
			uow := txUnitOfWork(t, drv)

			failure := errTest("the use case failed")
			err := uow.Transaction(t.Context(), func(ctx context.Context, tx wharf.Tx) error {
				if _, err := tx.Outbox.Enqueue(ctx, msg("otel.rolled")); err != nil {
					return err
				}
				return failure
			})
			require.ErrorIs(t, err, failure)
			tx := tel.one(t, "wharf transaction")
			require.Equal(t, codes.Error, tx.Status().Code)
			require.Equal(t, "rolled_back", attrs(tx.Attributes())["wharf.transaction.outcome"].AsString())
			requireException(t, tx, failure.Error())

			_, err = drv.Outbox().Enqueue(t.Context(), msg("otel.retry"), msg("otel.dead"))
			require.NoError(t, err)
			hs := relay.NewHandlers()
			require.NoError(t, hs.Handle("otel.retry", func(context.Context, ports.ClaimedMessage) error {
				return errTest("try again")
			}, relay.TopicOptions{}))
			require.NoError(t, hs.Handle("otel.dead", func(context.Context, ports.ClaimedMessage) error {
				return relay.Permanent(errTest("never"))
			}, relay.TopicOptions{}))
			r, err := relay.New(drv.Outbox(), hs, relay.Options{Hooks: tel.inst.Hooks()})
			require.NoError(t, err)
			res, err := r.Drain(t.Context())
			require.NoError(t, err)
			require.Equal(t, 1, res.Retried)
			require.Equal(t, 1, res.DeadLettered)

			for topic, want := range map[string]struct{ outcome, err string }{
				"otel.retry": {"retried", "try again"},
				"otel.dead":  {"dead", "never"},
			} {
				p := tel.one(t, "process "+topic)
				require.Equal(t, want.outcome, attrs(p.Attributes())["wharf.delivery.outcome"].AsString())
				require.Equal(t, codes.Error, p.Status().Code)
				requireException(t, p, want.err)
				require.Equal(t, int64(1), attrs(p.Attributes())["wharf.message.attempt"].AsInt64())
			}
			// Without a trace in the enqueue's context, the producer span is
			// a root, and the delivery its child.
			send := tel.one(t, "send")
			require.False(t, send.Parent().IsValid())
			require.Equal(t, send.SpanContext().TraceID(), tel.one(t, "process otel.retry").SpanContext().TraceID())
		})
	}
}

// requireException checks that span recorded an exception event whose
// message contains text.
func requireException(t *testing.T, span sdktrace.ReadOnlySpan, text string) {
	t.Helper()
	for _, ev := range span.Events() {
		if ev.Name == "exception" {
			require.Contains(t, attrs(ev.Attributes)["exception.message"].AsString(), text)
			return
		}
	}
	t.Fatalf("span %q has no exception event; events: %v", span.Name(), span.Events())
}

type errTest string

func (e errTest) Error() string { return string(e) }

// dbSystemName is the conventions' db.system.name of a wharf dialect.
func dbSystemName(dialect string) string {
	if dialect == "postgres" {
		return "postgresql"
	}
	return dialect
}
