package jetstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	wjs "github.com/wharf-go/wharf/sinks/jetstream"
)

// The benchmarks publish b.N messages of one shape into a file-backed
// stream on an in-process nats-server (benchModes), straight from memory or
// from a SQLite outbox through a relay, and report msgs/s. make bench-sinks
// runs them side by side.

// benchWindow is the most publishes in flight: the relay's default
// Concurrency, and the direct benchmarks' window.
const benchWindow = relay.DefaultConcurrency

var benchPayload = []byte(`{"order_id":"o-123456","customer_id":"c-42","lines":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"total_cents":4599}`)

func benchHeaders() map[string]string {
	return map[string]string{"traceparent": traceparent, core.HeaderOccurredAt: core.FormatTime(time.Now())}
}

// benchModes are the servers the benchmarks publish to: JetStream's
// defaults (the file store syncs to disk every 2 minutes), and syncing
// every write, as the outbox's SQLite does every commit.
var benchModes = []struct {
	name       string
	syncAlways bool
}{
	{name: "DefaultSync", syncAlways: false},
	{name: "SyncAlways", syncAlways: true},
}

// benchStream starts a server and a stream for one benchmark run.
func benchStream(b testing.TB, syncAlways bool) (*nats.Conn, jetstream.JetStream, jetstream.Stream) {
	b.Helper()
	srv := startNATSServer(b, &natsServer{syncAlways: syncAlways})
	nc, js := connect(b, srv.url())
	return nc, js, createStream(b, js, "BENCH", "bench.>")
}

func reportRate(b *testing.B, st jetstream.Stream) {
	b.Helper()
	b.StopTimer()
	require.EqualValues(b, b.N, streamCount(b, st), "every message is in the stream")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkDirectJetStream publishes the messages straight to JetStream
// with the headers a Publisher sets, benchWindow in flight: asynchronously
// (one goroutine, the client's ack futures) and synchronously (benchWindow
// goroutines, each awaiting its ack, as relay handlers do).
func BenchmarkDirectJetStream(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(mode.name, func(b *testing.B) { benchDirect(b, mode.syncAlways) })
	}
}

func benchDirect(b *testing.B, syncAlways bool) {
	b.Run("Async", func(b *testing.B) {
		_, js, st := benchStream(b, syncAlways)
		ajs, err := jetstream.New(js.Conn(), jetstream.WithPublishAsyncMaxPending(benchWindow))
		require.NoError(b, err)
		ids := benchIDs(b.N)
		b.ResetTimer()
		for i := range b.N {
			_, err := ajs.PublishMsgAsync(directMsg(ids[i]), jetstream.WithStallWait(time.Minute))
			require.NoError(b, err)
		}
		select {
		case <-ajs.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("acks missing after a minute")
		}
		reportRate(b, st)
	})
	b.Run("Sync", func(b *testing.B) {
		_, js, st := benchStream(b, syncAlways)
		ids := benchIDs(b.N)
		next := make(chan string, benchWindow)
		var wg sync.WaitGroup
		b.ResetTimer()
		for range benchWindow {
			wg.Go(func() {
				for id := range next {
					if _, err := js.PublishMsg(context.Background(), directMsg(id)); err != nil {
						b.Error(err)
					}
				}
			})
		}
		for _, id := range ids {
			next <- id
		}
		close(next)
		wg.Wait()
		reportRate(b, st)
	})
}

func benchIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = core.NewID()
	}
	return ids
}

// directMsg is the message a Publisher would send for an outbox message.
func directMsg(id string) *nats.Msg {
	h := nats.Header{jetstream.MsgIDHeader: {id}, wjs.HeaderTopic: {"bench.placed"}}
	for k, v := range benchHeaders() {
		h[k] = []string{v}
	}
	return &nats.Msg{Subject: "bench.placed", Header: h, Data: benchPayload}
}

// BenchmarkOutboxToJetStream drains b.N messages from a SQLite outbox (a
// file, the provider's defaults) into JetStream with one relay (default
// options: batches of 100, benchWindow handlers) and a Publisher. Seeding
// the outbox is not timed.
func BenchmarkOutboxToJetStream(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(mode.name, func(b *testing.B) {
			_, js, st := benchStream(b, mode.syncAlways)
			pub, err := wjs.NewPublisher(js, wjs.Options{})
			require.NoError(b, err)
			drainBench(b, pub.Handle)
			reportRate(b, st)
		})
	}
}

// BenchmarkOutboxDrainNoop drains the same outbox with a handler that does
// nothing: the relay's own ceiling on this machine, which no sink passes.
func BenchmarkOutboxDrainNoop(b *testing.B) {
	drainBench(b, func(context.Context, ports.ClaimedMessage) error { return nil })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// drainBench seeds b.N messages, resets the timer and drains them with h
// by one relay with the default options.
func drainBench(b *testing.B, h relay.Handler) {
	b.Helper()
	_, drv := openOutbox(b, wharf.Options{})
	msgs := make([]ports.OutboxMessage, b.N)
	for i := range msgs {
		msgs[i] = ports.OutboxMessage{Topic: "bench.placed", Payload: benchPayload, Headers: benchHeaders()}
	}
	enqueue(b, drv.Outbox(), msgs)
	hs := relay.NewHandlers()
	require.NoError(b, hs.Handle("bench.placed", h, relay.TopicOptions{}))
	r, err := relay.New(drv.Outbox(), hs, relay.Options{})
	require.NoError(b, err)
	ctx := context.Background()
	b.ResetTimer()
	for {
		res, err := r.Drain(ctx)
		require.NoError(b, err)
		require.Zero(b, res.Retried+res.DeadLettered+res.Abandoned, "%+v", res)
		stats, err := drv.Outbox().Stats(ctx)
		require.NoError(b, err)
		if stats.Total() == 0 {
			return
		}
		if res.Claimed == 0 {
			b.Fatalf("a pass claimed nothing with %+v left", stats)
		}
	}
}
