package relaye2e

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// pollOnly hides an outbox's notifications, so the relay polls.
type pollOnly struct{ ports.Outbox }

// latencyPoll is the relay's poll interval in the latency benchmark, every
// mode (idle back-off disabled), so the polling figures are comparable.
const latencyPoll = 100 * time.Millisecond

// Where the benchmark's relay runs relative to the producer.
const (
	// latencySameProcess: the relay uses the producer's own driver, so the
	// outbox wakes it as soon as Enqueue commits (every dialect).
	latencySameProcess = "SameProcessNotified"
	// latencyOtherProcess: the relay uses a driver of its own (its own pool,
	// its own wake-ups), as a relay in another process would: only the
	// database's notifications reach it (PostgreSQL LISTEN/NOTIFY); on the
	// other dialects it polls.
	latencyOtherProcess = "OtherProcess"
	// latencyPollingOnly: the producer's driver with its notifications
	// hidden; the relay polls every latencyPoll.
	latencyPollingOnly = "PollingOnly"
)

// BenchmarkRelayLatency measures the time from the start of Enqueue (one
// message, committed) to its handler starting, on an idle relay that polls
// every 100ms: woken in process by the producer's driver, in another
// process (notified by the database where it can: PostgreSQL), and by
// polling alone. Messages arrive one at a time at random moments of the
// poll cycle. It reports p50 and p99; it asserts nothing about time.
//
//	go test -run '^$' -bench RelayLatency -benchtime 200x ./internal/relaye2e/
func BenchmarkRelayLatency(b *testing.B) {
	for _, d := range dialects {
		for _, mode := range []string{latencySameProcess, latencyOtherProcess, latencyPollingOnly} {
			b.Run(d.name+"/"+mode, func(b *testing.B) {
				url := d.newDB(b)
				ob := openDriver(b, d, url, wharf.Options{}).Outbox()
				var relayOutbox ports.Outbox
				switch mode {
				case latencySameProcess:
					relayOutbox = ob
				case latencyOtherProcess:
					relayOutbox = openDriver(b, d, url, wharf.Options{}).Outbox()
				case latencyPollingOnly:
					relayOutbox = pollOnly{ob}
				}
				handled := make(chan time.Time, 1)
				hs := relay.NewHandlers()
				require.NoError(b, hs.Handle(topicWork, func(context.Context, ports.ClaimedMessage) error {
					handled <- time.Now()
					return nil
				}, relay.TopicOptions{}))
				r, err := relay.New(relayOutbox, hs, relay.Options{PollInterval: latencyPoll, MaxPollInterval: latencyPoll})
				require.NoError(b, err)
				ctx, cancel := context.WithCancel(context.Background())
				stopped := make(chan error, 1)
				go func() { stopped <- r.Run(ctx) }()
				b.Cleanup(func() {
					cancel()
					require.NoError(b, <-stopped)
				})

				msg := ports.OutboxMessage{Kind: ports.KindJob, Topic: topicWork, Payload: []byte(`{}`)}
				enqueue := func() time.Duration {
					start := time.Now()
					_, err := ob.Enqueue(context.Background(), msg)
					require.NoError(b, err)
					select {
					case at := <-handled:
						return at.Sub(start)
					case <-time.After(time.Minute):
						require.FailNow(b, "the message was never handled")
						return 0
					}
				}
				enqueue() // warm up: the relay is running and idle
				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					// Arrive at a random moment of the poll cycle: right after
					// a delivery the relay has just begun its pause, and a
					// closed loop would always wait all of it.
					b.StopTimer()
					<-time.After(rand.N(latencyPoll))
					b.StartTimer()
					lat = append(lat, enqueue())
				}
				b.StopTimer()
				slices.Sort(lat)
				pct := func(p float64) float64 {
					return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds())
				}
				b.ReportMetric(pct(0.50), "p50-µs")
				b.ReportMetric(pct(0.99), "p99-µs")
				b.ReportMetric(0, "ns/op") // the loop's time is the latency, reported above
			})
		}
	}
}
