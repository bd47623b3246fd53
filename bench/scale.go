package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wharf-go/wharf/ports"
)

// The scale workload: how costs grow with the table. Variant "drain": one
// relay drains a backlog of Size messages (10k, 100k, 1M), recording the
// latency of every claim and the peak heap. Variant "enqueue": producers
// enqueue one message per transaction while Size dead letters sit in the
// table.

func init() {
	cases["scale/wharf"] = func(ctx context.Context, s Spec, r *Result) error {
		switch s.Variant {
		case "drain":
			return wharfDrain(ctx, s, r)
		case "enqueue":
			r.Notes = append(r.Notes, fmt.Sprintf("%d dead letters in the table", s.Size))
			return wharfEnqueue(ctx, s, r)
		}
		return fmt.Errorf("unknown scale variant %q", s.Variant)
	}
	cases["slow/wharf"] = wharfDrain
	cases["notify/wharf"] = wharfEnqueue
	cases["notify/raw"] = rawEnqueue
	cases["notify/raw-nonotify"] = rawEnqueue
	cases["notify/raw-instmt"] = rawEnqueue
}

// timedOutbox records the latency of every Claim.
type timedOutbox struct {
	ports.Outbox
	mu     sync.Mutex
	claims []time.Duration
}

func (t *timedOutbox) Claim(ctx context.Context, opts ports.ClaimOptions) ([]ports.ClaimedMessage, error) {
	start := time.Now()
	msgs, err := t.Outbox.Claim(ctx, opts)
	d := time.Since(start)
	t.mu.Lock()
	t.claims = append(t.claims, d)
	t.mu.Unlock()
	return msgs, err
}

// fill records the claim latencies in r.
func (t *timedOutbox) fill(r *Result) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.claims) == 0 {
		return
	}
	d := slices.Clone(t.claims)
	slices.Sort(d)
	r.Claims = int64(len(d))
	r.ClaimP50ms = float64(d[len(d)/2]) / 1e6
	r.ClaimP99ms = float64(d[len(d)*99/100]) / 1e6
}
