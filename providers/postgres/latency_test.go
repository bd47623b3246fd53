package postgres_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// latencyPoll is the relay's poll interval in BenchmarkRelayLatencyBehindPgBouncer
// (idle back-off disabled), so that the polling figures are comparable.
const latencyPoll = 100 * time.Millisecond

// latencySetup is where the benchmark's producer and relay reach the
// server: each has a pool of its own, as two processes would.
type latencySetup struct {
	name      string
	route     route
	listenURL bool // the relay's driver sets Options.Listen.URL to the server
}

// BenchmarkRelayLatencyBehindPgBouncer measures the time from the start of
// Enqueue (one message, committed) to its handler starting in a relay on
// another driver (another pool, as in another process), which only
// PostgreSQL's notifications can wake: with both pools on the server
// directly, through PgBouncer in transaction pooling mode without
// Options.Listen.URL (the probe fails and the relay polls every 100ms),
// and through PgBouncer with Listen.URL pointing at the server. Idle sends
// one message at a time at a random moment of the poll cycle; Rate500
// sends 500 msgs/s. It reports p50 and p99 and asserts nothing about time.
//
//	bash scripts/testdb.sh run --pgbouncer -- go test -run '^$' -bench RelayLatencyBehindPgBouncer -benchtime 200x ./providers/postgres/
func BenchmarkRelayLatencyBehindPgBouncer(b *testing.B) {
	setups := []latencySetup{
		{name: "Direct", route: direct},
		{name: "PgBouncer", route: pgbouncer},
		{name: "PgBouncerListenURL", route: pgbouncer, listenURL: true},
	}
	for _, load := range []string{"Idle", "Rate500"} {
		for _, s := range setups {
			b.Run(load+"/"+s.name, func(b *testing.B) {
				benchRelayLatency(b, s, load == "Rate500")
			})
		}
	}
}

func benchRelayLatency(b *testing.B, s latencySetup, rate bool) {
	ctx := context.Background()
	d := newDatabase(b, s.route)
	producer := openDriver(b, d.url, wharf.Options{})
	require.NoError(b, producer.Migrate(ctx))
	logs := &logRecorder{}
	opts := wharf.Options{Logger: slog.New(logs)}
	if s.listenURL {
		opts.Listen.URL = d.server
	}
	relayOutbox := openDriver(b, d.url, opts).Outbox()

	// The payload carries the time Enqueue started: the handler may run
	// before Enqueue returns.
	lat := make(chan time.Duration, 1024)
	hs := relay.NewHandlers()
	require.NoError(b, hs.Handle("t", func(_ context.Context, m ports.ClaimedMessage) error {
		var p struct{ T int64 }
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			return relay.Permanent(err)
		}
		lat <- time.Since(time.Unix(0, p.T))
		return nil
	}, relay.TopicOptions{}))
	r, err := relay.New(relayOutbox, hs, relay.Options{PollInterval: latencyPoll, MaxPollInterval: latencyPoll})
	require.NoError(b, err)
	rctx, cancel := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- r.Run(rctx) }()
	b.Cleanup(func() {
		cancel()
		require.NoError(b, <-stopped)
	})

	enqueue := func() error {
		payload := `{"T":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `}`
		_, err := producer.Outbox().Enqueue(ctx, ports.OutboxMessage{Kind: ports.KindJob, Topic: "t", Payload: json.RawMessage(payload)})
		return err
	}
	failed := make(chan error, 1) // the producer's error in Rate500
	await := func() time.Duration {
		select {
		case d := <-lat:
			return d
		case err := <-failed:
			require.NoError(b, err)
		case <-time.After(time.Minute):
			require.FailNow(b, "a message was never handled")
		}
		return 0
	}
	require.NoError(b, enqueue()) // warm up: the relay is running and idle
	await()
	// The setup is what it says: only PgBouncer without Listen.URL polls.
	wantWarnings := 0
	if s.route == pgbouncer && !s.listenURL {
		wantWarnings = 1
	}
	require.Equal(b, wantWarnings, logs.countLines(probeWarning), logs.text())
	got := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	if rate {
		// 500 msgs/s from a ticker in a goroutine; the latencies are
		// collected as they come.
		go func() {
			tick := time.NewTicker(2 * time.Millisecond)
			defer tick.Stop()
			for range b.N {
				<-tick.C
				if err := enqueue(); err != nil {
					failed <- err
					return
				}
			}
		}()
		for range b.N {
			got = append(got, await())
		}
	} else {
		for range b.N {
			// Arrive at a random moment of the poll cycle: right after a
			// delivery the relay has just begun its pause.
			b.StopTimer()
			<-time.After(rand.N(latencyPoll))
			b.StartTimer()
			require.NoError(b, enqueue())
			got = append(got, await())
		}
	}
	b.StopTimer()
	slices.Sort(got)
	pct := func(p float64) float64 {
		return float64(got[min(len(got)-1, int(p*float64(len(got))))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(0, "ns/op") // the loop's time is the latency, reported above
}
