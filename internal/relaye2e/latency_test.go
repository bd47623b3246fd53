package relaye2e

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

// pollOnly hides an outbox's notifications, so the relay polls.
type pollOnly struct{ ports.Outbox }

// latencyPoll is the relay's poll interval in the latency benchmark, both
// modes (idle back-off disabled), so the polling figures are comparable.
const latencyPoll = 100 * time.Millisecond

// BenchmarkRelayLatency measures the time from the start of Enqueue (one
// message, committed) to its handler starting, on an idle relay: with the
// outbox's notifications (where it has them: PostgreSQL) and with polling
// only (every 100ms). Messages arrive one at a time at random moments of the
// poll cycle. It reports p50 and p99; it asserts nothing about time.
//
//	go test -run '^$' -bench RelayLatency -benchtime 200x ./internal/relaye2e/
func BenchmarkRelayLatency(b *testing.B) {
	for _, d := range dialects {
		for _, mode := range []string{"Notifications", "Polling"} {
			b.Run(d.name+"/"+mode, func(b *testing.B) {
				url := d.newDB(b)
				ob, err := d.newOutbox(openDB(b, d, url), time.Now)
				require.NoError(b, err)
				var relayOutbox ports.Outbox = ob
				if mode == "Polling" {
					relayOutbox = pollOnly{ob}
				} else if _, ok := relayOutbox.(ports.OutboxNotifier); !ok {
					b.Skip("the outbox has no notifications")
				}
				handled := make(chan time.Time, 1)
				hs := core.NewHandlers()
				require.NoError(b, hs.Handle(topicWork, func(context.Context, ports.ClaimedMessage) error {
					handled <- time.Now()
					return nil
				}))
				r, err := core.NewRelay(relayOutbox, hs, core.RelayOptions{PollInterval: latencyPoll, MaxPollInterval: latencyPoll})
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
