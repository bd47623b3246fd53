package sqlbase

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Gate queues the writers of one database in Go, first come first served,
// so that they never meet in the database's own lock wait (SQLite's busy
// handler sleeps 1, 2, 5, 10 … ms between attempts, and a writer that
// loses a few times in a row can starve behind one that never pauses).
//
// A nil *Gate is valid and never waits. Enter is reentrant through its
// context: a context returned by Enter (or derived from one) enters the same
// gate without waiting while the holder has not left, so an operation
// called inside a gated transaction never waits for itself.
//
// Waiting is bounded by the gate's patience: after it, Enter gives up its
// place and lets the caller through without the gate, leaving the database's
// own lock wait (busy_timeout) to decide. The gate therefore never turns a
// wait that the database would end into one that never ends, e.g. when a
// gated transaction calls an operation on the root handle with an unrelated
// context.
type Gate struct {
	sem      chan struct{}
	patience time.Duration
}

// NewGate returns a gate whose waits give up after patience (<= 0: never).
func NewGate(patience time.Duration) *Gate {
	return &Gate{sem: make(chan struct{}, 1), patience: patience}
}

// holder marks a context as running inside a gate; the context carries it
// under the gate itself as the key, so holding one gate never hides another
// held further out (a unit of work on one database inside one on another).
type holder struct {
	active atomic.Bool
}

func noop() {}

// Enter waits for the gate and returns the context to run the gated work
// with and the function that leaves the gate (call it exactly once). It
// returns an error only when ctx ends while waiting.
func (g *Gate) Enter(ctx context.Context) (context.Context, func(), error) {
	if g == nil {
		return ctx, noop, nil
	}
	if h, ok := ctx.Value(g).(*holder); ok && h.active.Load() {
		return ctx, noop, nil // already inside
	}
	select {
	case g.sem <- struct{}{}:
	default:
		taken, err := g.wait(ctx)
		if err != nil || !taken {
			return ctx, noop, err
		}
	}
	h := &holder{}
	h.active.Store(true)
	return context.WithValue(ctx, g, h), func() {
		if h.active.CompareAndSwap(true, false) {
			<-g.sem
		}
	}, nil
}

// EnterFor is Enter for operation op of component what ("outbox",
// "enqueue"), its error naming both.
func (g *Gate) EnterFor(ctx context.Context, what, op string) (context.Context, func(), error) {
	ctx, leave, err := g.Enter(ctx)
	if err != nil {
		return ctx, leave, fmt.Errorf("%s %s: wait for the write gate: %w", what, op, err)
	}
	return ctx, leave, nil
}

// wait queues for the gate. It reports false (and no error) when its
// patience ran out: the caller then goes through without the gate.
func (g *Gate) wait(ctx context.Context) (taken bool, err error) {
	var timeout <-chan time.Time
	if g.patience > 0 {
		t := time.NewTimer(g.patience)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case g.sem <- struct{}{}:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	case <-timeout:
		return false, nil
	}
}
