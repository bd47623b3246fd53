package relay_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// countingOutbox hands out n messages and accepts every outcome: it costs
// next to nothing, so a benchmark over it measures the relay alone.
type countingOutbox struct {
	mu   sync.Mutex
	left int
	seq  int
}

func (o *countingOutbox) Enqueue(context.Context, ...ports.OutboxMessage) ([]string, error) {
	panic("countingOutbox: Enqueue is not used by the relay")
}

func (o *countingOutbox) Claim(_ context.Context, opts ports.ClaimOptions) ([]ports.ClaimedMessage, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := min(opts.Limit, o.left)
	o.left -= n
	out := make([]ports.ClaimedMessage, n)
	locked := time.Now().Add(opts.Lease)
	for i := range out {
		o.seq++
		id := strconv.Itoa(o.seq)
		out[i] = ports.ClaimedMessage{ID: id, Token: id, Kind: ports.KindJob, Topic: "t",
			Payload: json.RawMessage(`{}`), Attempts: 1, MaxAttempts: 3, LockedUntil: locked}
	}
	return out, nil
}

func (o *countingOutbox) Complete(context.Context, ...ports.Claim) error { return nil }
func (o *countingOutbox) Retry(context.Context, ports.Claim, ports.RetryOptions) error {
	return nil
}
func (o *countingOutbox) DeadLetter(context.Context, ports.Claim, string) error { return nil }
func (o *countingOutbox) Extend(_ context.Context, _ ports.Claim, lease time.Duration) (time.Time, error) {
	return time.Now().Add(lease), nil
}
func (o *countingOutbox) Release(context.Context, ...ports.Claim) error { return nil }

// BenchmarkRelayDrain measures the relay's own cost per message (ns/op and
// allocs/op are per message): Drain over an outbox that costs nothing, with
// a no-op handler, BatchSize 100 and Concurrency 200 (the defaults, spelled
// out so that the figure compares across versions).
func BenchmarkRelayDrain(b *testing.B) {
	hs := relay.NewHandlers()
	if err := hs.Handle("t", func(context.Context, ports.ClaimedMessage) error { return nil }, relay.TopicOptions{}); err != nil {
		b.Fatal(err)
	}
	ob := &countingOutbox{}
	r, err := relay.New(ob, hs, relay.Options{BatchSize: 100, Concurrency: 200})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	ob.mu.Lock()
	ob.left = b.N
	ob.mu.Unlock()
	res, err := r.Drain(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if res.Delivered != b.N {
		b.Fatalf("delivered %d of %d", res.Delivered, b.N)
	}
}
