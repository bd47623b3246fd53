package conformance

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

func testRelayConcurrent(t *testing.T, h Harness) {
	const total, relays = 2000, 4
	f := setup(t, h)
	seed := f.outboxWith(f.db, config{now: realNow})
	var enqueued []string
	for b := 0; b < total/250; b++ {
		msgs := make([]ports.OutboxMessage, 250)
		for i := range msgs {
			msgs[i] = ports.OutboxMessage{Kind: ports.KindJob, Topic: "conf.relay.load", Payload: raw(fmt.Sprintf(`{"b":%d,"i":%d}`, b, i))}
		}
		enqueued = append(enqueued, f.enqueue(seed, msgs...)...)
	}

	var (
		delivered sync.Map // message ID -> relay
		count     atomic.Int64
		errs      errorList
		all       = make(chan struct{})
	)
	stops := make([]func() error, relays)
	for i := range relays {
		hs := f.handlers(func(hs *relay.Handlers) error {
			return hs.Handle("conf.relay.load", func(_ context.Context, m ports.ClaimedMessage) error {
				if prev, dup := delivered.LoadOrStore(m.ID, i); dup {
					errs.add(fmt.Errorf("message %s handled by relay %d and relay %v", m.ID, i, prev))
				}
				if m.Attempts != 1 {
					errs.add(fmt.Errorf("message %s handled on attempt %d; no lease expired, so every message is claimed once", m.ID, m.Attempts))
				}
				if count.Add(1) == total {
					close(all)
				}
				return nil
			}, relay.TopicOptions{})
		})
		opts := relay.Options{
			Concurrency: 8, BatchSize: 50, PollInterval: 2 * time.Millisecond, MaxPollInterval: 20 * time.Millisecond,
			Lease: 5 * time.Minute,
		}
		stops[i] = f.startRun(f.newRelay(f.outboxWith(f.db, config{now: realNow}), hs, opts))
	}
	select {
	case <-all:
	case <-time.After(2 * awaitTimeout):
		require.FailNow(t, "timed out", "%d of %d messages delivered", count.Load(), total)
	}
	for i, stop := range stops {
		require.NoError(t, stop(), "relay %d", i)
	}
	require.NoError(t, errs.err())
	got := map[string]struct{}{}
	delivered.Range(func(k, _ any) bool {
		got[k.(string)] = struct{}{}
		return true
	})
	require.Equal(t, uniq(enqueued), got, "exactly the enqueued messages are handled, each once")
	require.Empty(t, f.listAll(seed), "every message was completed")
	require.Equal(t, ports.OutboxStats{}, f.stats(seed))
}
