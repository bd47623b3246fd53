package watermill_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	wm "github.com/wharf-go/wharf/sinks/watermill"
)

// received checks messages consumed from a Watermill subscriber against
// the enqueued ones: each once, nothing else, UUID = outbox ID, payload and
// metadata as recorded, and the messages of each key in enqueue order.
func requireReceivedEachOnceInKeyOrder(t testing.TB, got []*message.Message, ids []string, msgs []ports.OutboxMessage, topic string) {
	t.Helper()
	index := make(map[string]int, len(ids))
	for i, id := range ids {
		index[id] = i
	}
	seen := map[string]bool{}
	lastOfKey := map[string]int{}
	for _, m := range got {
		i, ok := index[m.UUID]
		require.True(t, ok, "received message %q, which was never enqueued", m.UUID)
		require.False(t, seen[m.UUID], "message %s received twice", m.UUID)
		seen[m.UUID] = true
		var body struct{ N int }
		require.NoError(t, json.Unmarshal(m.Payload, &body))
		require.Equal(t, i, body.N, "message %s carries its own payload", m.UUID)
		require.Equal(t, traceparent, m.Metadata.Get("traceparent"))
		require.Equal(t, tracestate, m.Metadata.Get("tracestate"))
		require.Equal(t, topic, m.Metadata.Get(wm.HeaderTopic))
		require.Equal(t, msgs[i].Key, m.Metadata.Get(wm.HeaderKey))
		if key := msgs[i].Key; key != "" {
			if last, ok := lastOfKey[key]; ok {
				require.Greater(t, i, last, "key %s: message %d received after message %d", key, i, last)
			}
			lastOfKey[key] = i
		}
	}
	require.Len(t, seen, len(ids), "every enqueued message was received")
}

// collect reads n messages from ch, acknowledging each. It may run on a
// goroutine of its own, so it returns its failure instead of failing t.
func collect(ch <-chan *message.Message, n int) ([]*message.Message, error) {
	out := make([]*message.Message, 0, n)
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for len(out) < n {
		select {
		case m, ok := <-ch:
			if !ok {
				return out, fmt.Errorf("subscription closed after %d of %d messages", len(out), n)
			}
			m.Ack()
			out = append(out, m)
		case <-timeout.C:
			return out, fmt.Errorf("timed out: received %d of %d messages", len(out), n)
		}
	}
	return out, nil
}

// TestGoChannel relays messages through Watermill's in-memory pub/sub to a
// subscriber, with two relays.
func TestGoChannel(t *testing.T) {
	t.Parallel()
	const n = 1000
	// Blocking until the subscriber acknowledges is how gochannel keeps
	// publish order (it delivers in the background otherwise).
	ps := gochannel.NewGoChannel(gochannel.Config{BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })
	ch, err := ps.Subscribe(context.Background(), "orders")
	require.NoError(t, err)

	drv := openOutbox(t)
	msgs := workload(n, 50, "order.placed")
	ids, err := drv.Outbox().Enqueue(context.Background(), msgs...)
	require.NoError(t, err)
	pub, err := wm.NewPublisher(ps, wm.Options{Topic: func(string) string { return "orders" }})
	require.NoError(t, err)
	hs := relay.NewHandlers()
	require.NoError(t, pub.Register(hs, relay.TopicOptions{}, "order.placed"))

	var (
		got        []*message.Message
		collectErr error
		done       = make(chan struct{})
	)
	go func() {
		defer close(done)
		got, collectErr = collect(ch, n)
	}()
	delivered := runRelays(t, 2, drv, hs, relay.Options{Concurrency: 16, PollInterval: 5 * time.Millisecond})
	<-done
	require.NoError(t, collectErr)
	require.EqualValues(t, n, delivered)
	requireReceivedEachOnceInKeyOrder(t, got, ids, msgs, "order.placed")
}

// TestFailures checks that Publish errors are retried unless
// Options.Permanent claims them, and that an empty topic mapping
// dead-letters at once with a clear last error.
func TestFailures(t *testing.T) {
	t.Parallel()
	closed := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	require.NoError(t, closed.Close()) // a closed pub/sub refuses every publish
	tests := []struct {
		name      string
		opts      wm.Options
		wantDead  bool
		lastError []string
	}{
		{name: "PublishErrorIsRetried", opts: wm.Options{}, wantDead: false,
			lastError: []string{`publish message`, `(topic "order.placed") to Watermill topic "order.placed"`, "closed"}},
		{name: "PermanentErrorDeadLetters", opts: wm.Options{Permanent: func(err error) bool { return strings.Contains(err.Error(), "closed") }}, wantDead: true,
			lastError: []string{`to Watermill topic "order.placed"`, "closed"}},
		{name: "EmptyTopicMappingDeadLetters", opts: wm.Options{Topic: func(string) string { return "" }}, wantDead: true,
			lastError: []string{`Options.Topic mapped topic "order.placed" to an empty Watermill topic`, "fix the mapping"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			drv := openOutbox(t)
			_, err := drv.Outbox().Enqueue(context.Background(), ports.OutboxMessage{Topic: "order.placed", Payload: []byte(`{}`), MaxAttempts: 5})
			require.NoError(t, err)
			pub, err := wm.NewPublisher(closed, tt.opts)
			require.NoError(t, err)
			hs := relay.NewHandlers()
			require.NoError(t, pub.Register(hs, relay.TopicOptions{}, "order.placed"))
			r, err := relay.New(drv.Outbox(), hs, relay.Options{Logger: testLogger(t)})
			require.NoError(t, err)
			res, err := r.Drain(context.Background())
			require.NoError(t, err)

			recs, err := drv.Outbox().List(context.Background(), ports.OutboxFilter{})
			require.NoError(t, err)
			require.Len(t, recs, 1)
			if tt.wantDead {
				require.Equal(t, 1, res.DeadLettered, "%+v", res)
				require.Equal(t, ports.StatusDead, recs[0].Status)
				require.Equal(t, 1, recs[0].Attempts, "dead-lettered at once")
			} else {
				require.Equal(t, 1, res.Retried, "%+v", res)
				require.Equal(t, ports.StatusPending, recs[0].Status)
			}
			for _, s := range tt.lastError {
				require.Contains(t, recs[0].LastError, s)
			}
		})
	}
}

func TestEventBusAndEventFromMessage(t *testing.T) {
	t.Parallel()
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })
	ch, err := ps.Subscribe(context.Background(), "order.placed")
	require.NoError(t, err)
	pub, err := wm.NewPublisher(ps, wm.Options{})
	require.NoError(t, err)
	at := time.Date(2026, 5, 6, 7, 8, 9, 123456000, time.UTC)
	ev := ports.Event{ID: "01J-event", Name: "order.placed", Payload: []byte(`{"n":1}`), Headers: map[string]string{"traceparent": traceparent}, OccurredAt: at}
	require.NoError(t, pub.Publish(context.Background(), ev))

	got1, err := collect(ch, 1)
	require.NoError(t, err)
	m := got1[0]
	require.Equal(t, "01J-event", m.UUID)
	require.Equal(t, core.FormatTime(at), m.Metadata.Get(core.HeaderOccurredAt))
	got, err := wm.EventFromMessage("order.placed", m)
	require.NoError(t, err)
	require.Equal(t, ev, got, "the consumer rebuilds the event")

	t.Run("EventWithoutID", func(t *testing.T) {
		err := pub.Publish(context.Background(), ports.Event{Name: "order.placed", Payload: []byte(`{}`)})
		require.ErrorIs(t, err, ports.ErrInvalidArgument)
		require.True(t, relay.IsPermanent(err))
	})
	t.Run("UnreadableOccurredAt", func(t *testing.T) {
		m := message.NewMessage("m1", []byte(`{}`))
		m.Metadata.Set(core.HeaderOccurredAt, "yesterday")
		_, err := wm.EventFromMessage("order.placed", m)
		require.ErrorIs(t, err, ports.ErrInvalidArgument)
		require.Contains(t, err.Error(), `metadata wharf-occurred-at "yesterday"`)
	})
	t.Run("TopicNamesAnEventWithoutTopicMetadata", func(t *testing.T) {
		got, err := wm.EventFromMessage("orders", message.NewMessage("m2", []byte(`{}`)))
		require.NoError(t, err)
		require.Equal(t, "orders", got.Name)
		require.Equal(t, "m2", got.ID)
	})
}

func TestBadArguments(t *testing.T) {
	t.Parallel()
	ps := gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })
	pub, err := wm.NewPublisher(ps, wm.Options{})
	require.NoError(t, err)
	tests := []struct {
		name     string
		err      func() error
		contains string
	}{
		{name: "NilPublisher", err: func() error { _, err := wm.NewPublisher(nil, wm.Options{}); return err }, contains: "nil Watermill publisher"},
		{name: "NilHandlers", err: func() error { return pub.Register(nil, relay.TopicOptions{}, "a") }, contains: "nil handler set"},
		{name: "NoTopics", err: func() error { return pub.Register(relay.NewHandlers(), relay.TopicOptions{}) }, contains: "hs.PublishEvents"},
		{name: "TopicTwice", err: func() error { return pub.Register(relay.NewHandlers(), relay.TopicOptions{}, "a", "a") }, contains: "already registered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.err()
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.Contains(t, err.Error(), tt.contains)
		})
	}
}

// recordingHandler keeps the records logged through it, with the value of
// ctxKey in the context of each.
type recordingHandler struct {
	mu   sync.Mutex
	recs []slog.Record
	ctxs []any
}

type ctxKey struct{}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	h.ctxs = append(h.ctxs, ctx.Value(ctxKey{}))
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// TestLoggerRecordsRedeliveries hands the publisher a message claimed from
// a real outbox, then the same message claimed again after a retry: the
// redelivery, published again, gets a debug record with typed attributes
// and the handler's ctx, never the payload or headers; the first delivery
// logs nothing, and a publisher without a Logger publishes it alike.
func TestLoggerRecordsRedeliveries(t *testing.T) {
	t.Parallel()
	ps := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 8}, watermill.NopLogger{})
	t.Cleanup(func() { _ = ps.Close() })
	ch, err := ps.Subscribe(context.Background(), "orders")
	require.NoError(t, err)
	h := &recordingHandler{}
	pub, err := wm.NewPublisher(ps, wm.Options{Topic: func(string) string { return "orders" }, Logger: slog.New(h)})
	require.NoError(t, err)
	silent, err := wm.NewPublisher(ps, wm.Options{Topic: func(string) string { return "orders" }})
	require.NoError(t, err)

	drv := openOutbox(t)
	ob := drv.Outbox()
	const secret = "card-4111111111111111"
	ids, err := ob.Enqueue(context.Background(), ports.OutboxMessage{Topic: "order.placed", Key: "customer-1",
		Payload: []byte(`{"card":"` + secret + `"}`), Headers: map[string]string{"authorization": secret}})
	require.NoError(t, err)
	ctx := context.WithValue(context.Background(), ctxKey{}, "the handler's ctx")
	for _, tc := range []struct {
		name    string
		pub     *wm.Publisher
		attempt int
		records int // in h so far
	}{
		{"FirstDeliveryLogsNothing", pub, 1, 0},
		{"RedeliveryIsRecorded", pub, 2, 1},
		{"WithoutALoggerTheRedeliveryIsPublished", silent, 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claimed, err := ob.Claim(context.Background(), ports.ClaimOptions{Limit: 1, Lease: time.Minute, Topics: []string{"order.placed"}})
			require.NoError(t, err)
			require.Len(t, claimed, 1)
			require.Equal(t, tc.attempt, claimed[0].Attempts)
			require.NoError(t, tc.pub.Handle(ctx, claimed[0]))
			got, err := collect(ch, 1)
			require.NoError(t, err)
			require.Equal(t, ids[0], got[0].UUID, "published again")
			require.NoError(t, ob.Retry(context.Background(), claimed[0].Claim(), ports.RetryOptions{LastError: "broker unreachable"}))

			h.mu.Lock()
			defer h.mu.Unlock()
			require.Len(t, h.recs, tc.records)
			if tc.records == 0 {
				return
			}
			r := h.recs[0]
			require.Equal(t, slog.LevelDebug, r.Level)
			require.Contains(t, r.Message, "published a redelivered message again")
			attrs := map[string]slog.Value{}
			r.Attrs(func(a slog.Attr) bool {
				attrs[a.Key] = a.Value
				require.NotContains(t, a.Value.String(), secret, "no payload or header values")
				return true
			})
			require.Equal(t, map[string]slog.Value{"message_id": slog.StringValue(ids[0]), "topic": slog.StringValue("order.placed"),
				"watermill_topic": slog.StringValue("orders"), "attempt": slog.IntValue(2)}, attrs)
			require.Equal(t, "the handler's ctx", h.ctxs[0])
		})
	}
}
