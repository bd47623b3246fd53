package outboxsql

import (
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/querylog"
	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
)

// settlement checks claims and returns their Settlement. The same claim
// given twice is applied once: counted twice, a fully applied batch would
// look short (a lost claim).
func settlement(op string, claims []ports.Claim) (Settlement, error) {
	s := Settlement{IDs: make([]string, 0, len(claims)), Tokens: make([]string, 0, len(claims))}
	seen := make(map[ports.Claim]struct{}, len(claims))
	for i, c := range claims {
		if c.ID == "" || c.Token == "" {
			return s, fmt.Errorf("outbox %s: %w", op, check.Invalidf("claim %d has an empty ID or Token; pass ClaimedMessage.Claim()", i))
		}
		if _, dup := seen[c]; dup {
			continue
		}
		seen[c] = struct{}{}
		s.IDs, s.Tokens = append(s.IDs, c.ID), append(s.Tokens, c.Token)
	}
	return s, nil
}

// Complete implements ports.Outbox: delivered messages leave the table.
func (o *Outbox) Complete(ctx context.Context, claims ...ports.Claim) error {
	return o.settle(ctx, "complete", claims, false, freesKey)
}

// Release implements ports.Outbox.
func (o *Outbox) Release(ctx context.Context, claims ...ports.Claim) error {
	return o.settle(ctx, "release", claims, true, freesAll)
}

// settle runs a Complete or Release; frees tells the claim cursor which
// settled messages may have made a message claimable behind it.
func (o *Outbox) settle(ctx context.Context, op string, claims []ports.Claim, release bool, frees func(heldMessage) bool) error {
	if len(claims) == 0 {
		return nil
	}
	s, err := settlement(op, claims)
	if err != nil {
		return err
	}
	ctx = querylog.WithPort(ctx, "outbox."+op)
	s.Release = release
	if release {
		s.Now = core.FormatTime(o.now())
	}
	ctx, leave, err := o.gate.EnterFor(ctx, "outbox", op)
	if err != nil {
		return err
	}
	defer leave()
	var lost []string
	err = o.againOnDeadlock(ctx, op, func() (err error) {
		lost, err = o.dialect.Settle(ctx, o.db, o.q, s)
		return err
	})
	if err != nil {
		return o.wrap(op, err)
	}
	o.settled(s.IDs, frees)
	if len(lost) > 0 {
		return &ports.ClaimLostError{Op: op, IDs: lost}
	}
	return nil
}

// settled tells the claim cursor that the claims of ids were settled, and
// when that made a message claimable (a keyed message's successor; a
// released message) and is already committed (the root handle), wakes
// this process's relays: a chain of keyed messages then advances at the
// speed of claims, not of the relays' polls.
func (o *Outbox) settled(ids []string, frees func(heldMessage) bool) {
	freed := false
	o.cur.settled(ids, func(h heldMessage) bool {
		f := frees(h)
		freed = freed || f
		return f
	})
	if freed && !sqlbase.InTx(o.db) {
		o.local.broadcast()
	}
}

// single runs a statement on one claim; frees is as settle's.
func (o *Outbox) single(ctx context.Context, op string, claim ports.Claim, frees func(heldMessage) bool, query string, args ...any) error {
	if claim.ID == "" || claim.Token == "" {
		return fmt.Errorf("outbox %s: %w", op, check.Invalidf("claim has an empty ID or Token; pass ClaimedMessage.Claim()"))
	}
	ctx = querylog.WithPort(ctx, "outbox."+op)
	ctx, leave, err := o.gate.EnterFor(ctx, "outbox", op)
	if err != nil {
		return err
	}
	defer leave()
	res, err := o.db.ExecContext(ctx, query, append(args, claim.ID, claim.Token)...)
	if err != nil {
		return o.wrap(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return o.wrap(op, err)
	}
	if n == 0 {
		return &ports.ClaimLostError{Op: op, IDs: []string{claim.ID}}
	}
	if frees != nil {
		o.settled([]string{claim.ID}, frees)
	}
	return nil
}

// Retry implements ports.Outbox.
func (o *Outbox) Retry(ctx context.Context, claim ports.Claim, opts ports.RetryOptions) error {
	now := o.now()
	at := opts.At
	if at.IsZero() {
		at = now
	}
	err := o.single(ctx, "retry", claim, freesRetry, o.q.retry, core.FormatTime(at), nullable(opts.LastError), core.FormatTime(now))
	if err == nil && !sqlbase.InTx(o.db) {
		o.dueWake.add(at.Sub(now), o.local.broadcast) // the message is claimable again then
	}
	return err
}

// dueWakes wakes this process's relays when retried messages become due,
// so that a retry after a short delay does not wait for the relays' next
// poll. It keeps the times in a heap and one timer for the earliest; a
// time up to dueWakeGrain before a kept one shares its wake-up, and a
// retry more than maxDueWake away (or past maxDueWakes pending) is left to
// the polls.
type dueWakes struct {
	mu    sync.Mutex
	times dueHeap // real times, earliest first
	timer *time.Timer
	armed time.Time // when timer fires; zero when stopped
}

const (
	dueWakeGrain = time.Millisecond
	maxDueWake   = time.Minute
	maxDueWakes  = 4096
)

// add arranges for wake to run after d.
func (w *dueWakes) add(d time.Duration, wake func()) {
	if d > maxDueWake {
		return
	}
	at := time.Now().Add(max(d, 0))
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, t := range w.times {
		if !t.Before(at) && t.Sub(at) < dueWakeGrain {
			return // that wake-up comes at or just after at
		}
	}
	if len(w.times) >= maxDueWakes {
		return
	}
	heap.Push(&w.times, at)
	w.armLocked(wake)
}

// armLocked sets the timer for the earliest time, if it is not set for it.
func (w *dueWakes) armLocked(wake func()) {
	if len(w.times) == 0 {
		return
	}
	next := w.times[0]
	if !w.armed.IsZero() && !next.Before(w.armed) {
		return
	}
	w.armed = next
	d := time.Until(next)
	if w.timer == nil {
		w.timer = time.AfterFunc(d, func() { w.fire(wake) })
	} else {
		w.timer.Reset(d)
	}
}

// fire wakes the relays, forgets the times that are due and arms the timer
// for the next.
func (w *dueWakes) fire(wake func()) {
	wake()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = time.Time{}
	now := time.Now()
	for len(w.times) > 0 && !w.times[0].After(now) {
		heap.Pop(&w.times)
	}
	w.armLocked(wake)
}

// dueHeap is a min-heap of times (container/heap).
type dueHeap []time.Time

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *dueHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// DeadLetter implements ports.Outbox.
func (o *Outbox) DeadLetter(ctx context.Context, claim ports.Claim, lastError string) error {
	return o.single(ctx, "dead-letter", claim, freesKey, o.q.deadLetter, nullable(lastError), core.FormatTime(o.now()))
}

// Extend implements ports.Outbox.
func (o *Outbox) Extend(ctx context.Context, claim ports.Claim, lease time.Duration) (time.Time, error) {
	if lease <= 0 {
		return time.Time{}, fmt.Errorf("outbox extend: %w", check.Invalidf("lease %v must be positive", lease))
	}
	now := o.now()
	until := now.Add(lease)
	if err := o.single(ctx, "extend", claim, nil, o.q.extend, core.FormatTime(until), core.FormatTime(now)); err != nil {
		return time.Time{}, err
	}
	o.cur.extended(claim.ID, until)
	return until, nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
