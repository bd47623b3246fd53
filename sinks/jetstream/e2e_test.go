package jetstream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	wjs "github.com/wharf-go/wharf/sinks/jetstream"
)

// The workload of the end-to-end tests: topic topicPlaced on the stream
// ORDERS; three messages in four carry one of numKeys ordering keys.
const (
	topicPlaced = "order.placed"
	numKeys     = 400
)

// workload returns n messages whose payloads hold their position.
func workload(n int) []ports.OutboxMessage {
	msgs := make([]ports.OutboxMessage, n)
	for i := range msgs {
		key := ""
		if i%4 != 3 {
			key = fmt.Sprintf("customer-%d", i%numKeys)
		}
		msgs[i] = ports.OutboxMessage{
			Topic: topicPlaced, Key: key, Payload: fmt.Appendf(nil, `{"n":%d}`, i),
			Headers: map[string]string{"traceparent": traceparent},
		}
	}
	return msgs
}

// requireStreamHoldsEachOnceInKeyOrder checks the stream against the
// enqueued messages: each ID exactly once, nothing else, and the messages
// of each key in enqueue order.
func requireStreamHoldsEachOnceInKeyOrder(t testing.TB, st jetstream.Stream, ids []string, msgs []ports.OutboxMessage) []stored {
	t.Helper()
	got := readStream(t, st)
	index := make(map[string]int, len(ids))
	for i, id := range ids {
		index[id] = i
	}
	seen := make(map[string]uint64, len(got))
	lastOfKey := map[string]int{}
	for _, m := range got {
		id := m.headers.Get(jetstream.MsgIDHeader)
		i, ok := index[id]
		require.True(t, ok, "stream sequence %d holds message %q, which was never enqueued", m.seq, id)
		if prev, dup := seen[id]; dup {
			require.Failf(t, "duplicate in the stream", "message %s at sequences %d and %d", id, prev, m.seq)
		}
		seen[id] = m.seq
		var body struct{ N int }
		require.NoError(t, json.Unmarshal(m.data, &body))
		require.Equal(t, i, body.N, "message %s carries its own payload", id)
		if key := msgs[i].Key; key != "" {
			if last, ok := lastOfKey[key]; ok {
				require.Greater(t, i, last, "key %s: message %d stored after message %d, out of enqueue order", key, i, last)
			}
			lastOfKey[key] = i
		}
	}
	require.Len(t, seen, len(ids), "every enqueued message is in the stream")
	require.Len(t, got, len(ids), "the stream holds nothing else")
	return got
}

// outOfOrder counts stream neighbours stored in the opposite of their
// enqueue order: how much the relays' concurrency reordered messages of
// different keys (which per-key order must survive).
func outOfOrder(got []stored, ids []string) int {
	index := make(map[string]int, len(ids))
	for i, id := range ids {
		index[id] = i
	}
	n := 0
	for i := 1; i < len(got); i++ {
		if index[got[i].headers.Get(jetstream.MsgIDHeader)] < index[got[i-1].headers.Get(jetstream.MsgIDHeader)] {
			n++
		}
	}
	return n
}

// counts tallies relay outcomes.
type counts struct {
	delivered, retried, dead, abandoned atomic.Int64
}

func (c *counts) observe(_ context.Context, o relay.Observation) {
	switch o.Outcome {
	case relay.OutcomeDelivered:
		c.delivered.Add(1)
	case relay.OutcomeRetried:
		c.retried.Add(1)
	case relay.OutcomeDead:
		c.dead.Add(1)
	case relay.OutcomeAbandoned:
		c.abandoned.Add(1)
	}
}

// fastRelay returns relay options that poll and retry quickly, counting
// outcomes in c and logging to the test's log (shown when it fails).
func fastRelay(t testing.TB, c *counts) relay.Options {
	return relay.Options{
		BatchSize: 100, Concurrency: 64, PollInterval: 5 * time.Millisecond, MaxPollInterval: 50 * time.Millisecond,
		Backoff: relay.Backoff{Initial: 20 * time.Millisecond, Max: 200 * time.Millisecond}, Observer: c.observe,
		Logger: testLogger(t),
	}
}

// testLogger logs warnings and errors to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testWriter writes log lines to the test's log. The relays it serves are
// stopped before their test ends.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// runRelays runs one relay per driver until stop is called; stop waits for
// them and requires clean returns.
func runRelays(t testing.TB, drivers []*wharf.Driver, hs *relay.Handlers, opts relay.Options) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, len(drivers))
	for i, drv := range drivers {
		r, err := relay.New(drv.Outbox(), hs, opts)
		require.NoError(t, err)
		wg.Go(func() { errs[i] = r.Run(ctx) })
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			for i, err := range errs {
				require.NoError(t, err, "relay %d", i)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// awaitEmpty waits until the outbox holds nothing, dead letters included.
func awaitEmpty(t testing.TB, ob wharf.Outbox, within time.Duration) {
	t.Helper()
	awaitCondition(t, within, "the outbox to empty", func() (bool, string) {
		s, err := ob.Stats(context.Background())
		require.NoError(t, err)
		return s.Total() == 0, fmt.Sprintf("%+v", s)
	})
}

// awaitCondition polls cond every 10ms until it holds, failing after
// within with cond's last description.
func awaitCondition(t testing.TB, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			require.FailNowf(t, "timed out", "waiting %v for %s; last state: %s", within, what, state)
		}
		<-tick.C
	}
}

// TestTenThousandMessagesThroughTwoRelays relays 10,000 messages with two
// relays (each on its own connection pool, as two instances would be) into
// one stream: the stream holds each message exactly once, and the messages
// of each key in the order they were recorded.
func TestTenThousandMessagesThroughTwoRelays(t *testing.T) {
	t.Parallel()
	const n = 10_000
	srv := startNATS(t)
	_, js := connect(t, srv.url())
	st := createStream(t, js, "ORDERS", "order.>")
	url, drv := openOutbox(t, wharf.Options{})
	msgs := workload(n)
	ids := enqueue(t, drv.Outbox(), msgs)

	pub, err := wjs.NewPublisher(js, wjs.Options{Stream: "ORDERS"})
	require.NoError(t, err)
	hs := relay.NewHandlers()
	require.NoError(t, pub.Register(hs, relay.TopicOptions{}, topicPlaced))
	c := &counts{}
	stop := runRelays(t, []*wharf.Driver{drv, openDriver(t, url, wharf.Options{})}, hs, fastRelay(t, c))
	awaitEmpty(t, drv.Outbox(), 3*time.Minute)
	stop()

	got := requireStreamHoldsEachOnceInKeyOrder(t, st, ids, msgs)
	require.EqualValues(t, n, c.delivered.Load(), "each message delivered once")
	require.Zero(t, c.dead.Load()+c.retried.Load(), "no failures")
	t.Logf("%d messages in the stream; %d neighbours out of enqueue order (different keys), none within a key", len(got), outOfOrder(got, ids))
}

// TestMissingStreamDeadLetters relays a topic whose subject no stream
// captures: the message is dead-lettered on its first attempt with a last
// error that names the subject and the fix.
func TestMissingStreamDeadLetters(t *testing.T) {
	t.Parallel()
	srv := startNATS(t)
	_, js := connect(t, srv.url())
	createStream(t, js, "ORDERS", "order.>")
	_, drv := openOutbox(t, wharf.Options{})
	ids := enqueue(t, drv.Outbox(), []ports.OutboxMessage{
		{Topic: "invoice.sent", Payload: []byte(`{}`), MaxAttempts: 10},
		{Topic: topicPlaced, Payload: []byte(`{}`)},
	})
	pub, err := wjs.NewPublisher(js, wjs.Options{})
	require.NoError(t, err)
	hs := relay.NewHandlers()
	require.NoError(t, pub.Register(hs, relay.TopicOptions{}, "invoice.sent", topicPlaced))
	r, err := relay.New(drv.Outbox(), hs, relay.Options{Logger: testLogger(t)})
	require.NoError(t, err)
	res, err := r.Drain(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, res.Delivered, "%+v", res)
	require.Equal(t, 1, res.DeadLettered, "%+v", res)

	dead, err := drv.Outbox().List(context.Background(), ports.OutboxFilter{Status: ports.StatusDead})
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, ids[0], dead[0].ID)
	require.Equal(t, 1, dead[0].Attempts, "dead-lettered at once, not after 10 attempts")
	for _, want := range []string{`subject "invoice.sent"`, "no JetStream stream captures the subject", `create a stream whose subjects include "invoice.sent"`, "requeue the dead letter"} {
		require.Contains(t, dead[0].LastError, want)
	}
}

// TestBrokerRestartMidDrain shuts the server down while a relay drains
// (through the event catch-all), waits until publishes have failed, and
// starts it again on the same port and store: nothing is lost, nothing is
// stored twice, key order holds.
func TestBrokerRestartMidDrain(t *testing.T) {
	t.Parallel()
	const n = 3000
	srv := startNATS(t)
	_, js := connect(t, srv.url())
	st := createStream(t, js, "ORDERS", "order.>")
	_, drv := openOutbox(t, wharf.Options{})
	msgs := workload(n)
	ids := enqueue(t, drv.Outbox(), msgs)

	pub, err := wjs.NewPublisher(js, wjs.Options{AckTimeout: 250 * time.Millisecond})
	require.NoError(t, err)
	hs := relay.NewHandlers()
	require.NoError(t, hs.PublishEvents(pub, relay.TopicOptions{}))
	c := &counts{}
	opts := fastRelay(t, c)
	opts.BatchSize, opts.Concurrency = 20, 16 // slow enough to be mid-drain at the restart
	stop := runRelays(t, []*wharf.Driver{drv}, hs, opts)

	awaitCondition(t, time.Minute, "500 messages in the stream", func() (bool, string) {
		got := streamCount(t, st)
		return got >= 500, fmt.Sprintf("%d messages", got)
	})
	srv.shutdown()
	awaitCondition(t, time.Minute, "publishes to fail during the outage", func() (bool, string) {
		return c.retried.Load() >= 5, fmt.Sprintf("%d retried", c.retried.Load())
	})
	stats, err := drv.Outbox().Stats(context.Background())
	require.NoError(t, err)
	require.Positive(t, stats.Pending(), "the outage happened mid-drain")
	srv.restart(t)

	awaitEmpty(t, drv.Outbox(), 3*time.Minute)
	stop()
	requireStreamHoldsEachOnceInKeyOrder(t, st, ids, msgs)
	require.Zero(t, c.dead.Load(), "an outage dead-letters nothing")
	t.Logf("pending at the restart: %d; retried attempts: %d; delivered: %d", stats.Pending(), c.retried.Load(), c.delivered.Load())
}
