package relaye2e

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

// tracker collects the HANDLED lines of several children.
type tracker struct {
	total int

	mu       sync.Mutex
	handled  map[string][]handling
	byChild  []int
	errs     []string
	all      chan struct{}
	allClose sync.Once
}

func newTracker(total, children int) *tracker {
	return &tracker{total: total, handled: make(map[string][]handling, total), byChild: make([]int, children), all: make(chan struct{})}
}

// onLine returns child i's line callback.
func (tr *tracker) onLine(i int) func(string) {
	return func(line string) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != lineDelivered {
			return
		}
		h, err := parseHandled(f[1:])
		tr.mu.Lock()
		defer tr.mu.Unlock()
		if err != nil {
			tr.errs = append(tr.errs, err.Error())
			return
		}
		tr.handled[h.id] = append(tr.handled[h.id], h)
		tr.byChild[i]++
		if len(tr.handled) >= tr.total {
			tr.allClose.Do(func() { close(tr.all) })
		}
	}
}

func (tr *tracker) count() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.handled)
}

// TestSoak runs three relay processes on one outbox while four producers
// enqueue 20,000 messages (2,000 with -short), a tenth of them with ordering
// keys. Every message must be handled, each key's messages in enqueue order,
// a message twice only on distinct attempts (a lease expired), and the
// outbox must end empty with every message completed exactly once.
func TestSoak(t *testing.T) {
	total := 20000
	if testing.Short() {
		total = 2000
	}
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) { soak(t, d, total) })
	}
}

func soak(t *testing.T, d dialect, total int) {
	const relays, producers, batch = 3, 4, 50
	require.Zero(t, total%(producers*batch))
	ctx := context.Background()
	url := d.newDB(t)
	ob := openDriver(t, d, url, wharf.Options{}).Outbox()

	tr := newTracker(total, relays)
	children := make([]*child, relays)
	for i := range children {
		children[i] = startChild(t, fmt.Sprintf("relay-%d", i), "soak", d, url, tr.onLine(i))
	}
	for _, c := range children {
		c.await(t, lineReady, 1)
	}

	start := time.Now()
	var (
		mu      sync.Mutex
		keyOf   = make(map[string]string, total) // id -> ordering key ("" for none)
		prodErr error
		wg      sync.WaitGroup
	)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < total/producers/batch; b++ {
				msgs := make([]ports.OutboxMessage, batch)
				for i := range msgs {
					n := b*batch + i
					msgs[i] = ports.OutboxMessage{Kind: ports.KindJob, Topic: topicWork, Payload: []byte(fmt.Sprintf(`{"p":%d,"n":%d}`, p, n))}
					if n%10 == 0 {
						// Each key belongs to one producer, whose commits are
						// sequential, so its ID order is its commit order.
						msgs[i].Key = fmt.Sprintf("p%d-k%d", p, n%7)
					}
				}
				ids, err := ob.Enqueue(ctx, msgs...)
				mu.Lock()
				if err != nil {
					prodErr = fmt.Errorf("producer %d batch %d: %w", p, b, err)
					mu.Unlock()
					return
				}
				for i, id := range ids {
					keyOf[id] = msgs[i].Key
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	produced := time.Since(start)
	require.NoError(t, prodErr)
	require.Len(t, keyOf, total)

	select {
	case <-tr.all:
	case <-time.After(3 * time.Minute):
		require.FailNow(t, "timed out", "%d of %d messages handled", tr.count(), total)
	}
	elapsed := time.Since(start)
	for _, c := range children {
		c.stop(t)
	}

	tr.mu.Lock()
	defer tr.mu.Unlock()
	require.Empty(t, tr.errs)
	require.Len(t, tr.handled, total)
	duplicates := 0
	byKey := map[string][]handling{}
	for id, hs := range tr.handled {
		key, ok := keyOf[id]
		require.True(t, ok, "handled message %s was never enqueued", id)
		if len(hs) > 1 {
			duplicates++
			attempts := map[int]bool{}
			for _, h := range hs {
				require.False(t, attempts[h.attempt], "message %s handled twice on attempt %d: two live claims at once", id, h.attempt)
				attempts[h.attempt] = true
			}
		}
		if key != "" {
			byKey[key] = append(byKey[key], hs[0])
		}
	}
	for key, hs := range byKey {
		sort.Slice(hs, func(i, j int) bool { return hs[i].at < hs[j].at })
		for i := 1; i < len(hs); i++ {
			require.Less(t, hs[i-1].id, hs[i].id, "key %s: messages are handled in enqueue order", key)
		}
	}

	var sum struct{ delivered, abandoned, released, retried, dead int }
	for _, c := range children {
		r := c.result(t)
		sum.delivered += r.Delivered
		sum.abandoned += r.Abandoned
		sum.released += r.Released
		sum.retried += r.Retried
		sum.dead += r.DeadLettered
	}
	require.Equal(t, total, sum.delivered, "every message was completed exactly once (abandoned %d, released %d)", sum.abandoned, sum.released)
	require.Zero(t, sum.retried+sum.dead)
	recs, err := ob.List(ctx, ports.OutboxFilter{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, recs, "the outbox is empty")
	st, err := ob.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, ports.OutboxStats{}, st)
	t.Logf("%s soak: %d messages (%d keyed) by %d producers in %v, handled by %d relay processes %v in %v (%.0f msg/s); duplicates %d, abandoned %d",
		d.name, total, total/10, producers, produced.Round(time.Millisecond), relays, tr.byChild, elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), duplicates, sum.abandoned)
}
