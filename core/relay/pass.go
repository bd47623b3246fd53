package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

// deliveryState is where a claimed message is in its life within a pass.
// Every transition happens under pass.mu; the state decides who may record
// the message's outcome, so that exactly one outcome is reported and a lost
// claim's outcome is never written.
type deliveryState int

const (
	// stRunning: the handler runs. The keeper may mark it lost.
	stRunning deliveryState = iota
	// stInterrupted: the handler returned an error after the shutdown
	// cancelled it, or never started (claimed as the shutdown began); the
	// shutdown releases the message.
	stInterrupted
	// stCompleting: the handler succeeded; the completer owns the outcome.
	stCompleting
	// stRecording: the handler failed; its goroutine records the outcome.
	stRecording
	// stReleasing: the shutdown releases the message.
	stReleasing
	// stDone: the outcome was reported.
	stDone
)

// delivery is one claimed message within a pass.
type delivery struct {
	msg   ports.ClaimedMessage
	route *route
	// ctx is the handler's: hc, or a context with the topic's Timeout
	// derived from it (stop releases its timer).
	ctx  context.Context
	hc   handlerCtx // part of the delivery: one allocation per message
	stop context.CancelFunc
	// prev and next link the pass's live deliveries (under pass.mu).
	prev, next *delivery
	// started is when the handler was dispatched (real clock).
	started time.Time
	// ran is how long the handler ran, once it returned.
	ran   time.Duration
	state deliveryState
	// lockedUntil and extendAt are on the relay's clock.
	lockedUntil time.Time
	extendAt    time.Time
	// end ends the Hooks' delivery of the message, once its outcome is
	// known (nil without Hooks.Start, and once called).
	end func(core.End)
}

// pass is one Run or Drain.
type pass struct {
	r *Relay
	// ctx is the caller's: its cancellation starts the shutdown.
	ctx context.Context
	// bg carries ctx's values without its cancellation: outcomes are
	// recorded with it, so a shutdown never interrupts them half-way.
	bg context.Context
	// threshold is how many free slots make a claim worth it while handlers
	// are still running.
	threshold int

	// running counts the occupied slots: messages dispatched whose worker
	// has not finished with them (handler, then the hand-off to the
	// completer or the Retry/DeadLetter write). A worker is busy only while
	// its message counts here.
	running atomic.Int64

	mu        sync.Mutex
	live      delivery // sentinel of the ring of messages held (claimed, no outcome yet)
	cancelled bool     // the shutdown cancelled the handlers
	res       DrainResult

	flog      *failureLog   // rate-limits the logs of repeated failures
	pool      workerPool    // runs the handlers
	slotFreed chan struct{} // coalesced: a slot became free
	handlers  sync.WaitGroup
	doneOnce  sync.Once
	allDone   chan struct{} // closed when every dispatched handler returned

	sends         sync.WaitGroup // workers sending to completions
	completions   chan *delivery
	flushReq      chan chan struct{} // the claim loop asks the completer to write what is done
	completerDone chan struct{}
	flushErr      error // final flush failure (set by the completer before completerDone)
	keeperStop    chan struct{}
	keeperDone    chan struct{}
}

func newPass(ctx context.Context, r *Relay) *pass {
	bg := context.WithoutCancel(ctx)
	p := &pass{
		r:             r,
		ctx:           ctx,
		bg:            bg,
		threshold:     claimThreshold(r.opts.BatchSize, r.opts.Concurrency),
		slotFreed:     make(chan struct{}, 1),
		completions:   make(chan *delivery, r.opts.Concurrency),
		flushReq:      make(chan chan struct{}),
		completerDone: make(chan struct{}),
		keeperStop:    make(chan struct{}),
		keeperDone:    make(chan struct{}),
		flog:          newFailureLog(r.log, FailureLogInterval),
	}
	p.pool.limit, p.pool.run = r.opts.Concurrency, p.handle
	return p
}

// claimThreshold is how many free slots make a claim worth it while
// handlers are running: a full batch when Concurrency leaves room for two,
// else half the slots, so claims come back full and the next one overlaps
// the handlers of the last.
func claimThreshold(batch, concurrency int) int {
	return max(1, min(batch, concurrency/2))
}

func (p *pass) startWorkers() {
	p.live.prev, p.live.next = &p.live, &p.live
	go p.completer()
	go p.keeper()
}

// run is Run's loop.
func (p *pass) run() error {
	r := p.r
	p.startWorkers()
	var wake <-chan struct{}
	if n, ok := r.outbox.(ports.OutboxNotifier); ok {
		nctx, ncancel := context.WithCancel(p.ctx)
		defer ncancel()
		ch, err := n.Notifications(nctx)
		switch {
		case err == nil:
			wake = ch
		case ch != nil && errors.Is(err, ports.ErrNotificationsUnavailable):
			// Partly: this process's commits still wake the relay (the
			// outbox has logged why the others cannot).
			wake = ch
			p.failure("notify", 0, err)
			r.log.LogAttrs(p.bg, slog.LevelDebug, "relay: notifications from other processes unavailable (the outbox logged why); polling for them")
		default:
			p.failure("notify", 0, err)
			r.log.LogAttrs(p.bg, slog.LevelWarn, "relay: outbox notifications unavailable; polling", slog.Any("error", err))
		}
	}
	r.log.LogAttrs(p.bg, slog.LevelInfo, "relay: running",
		slog.Int("batch_size", r.opts.BatchSize), slog.Int("concurrency", r.opts.Concurrency),
		slog.Duration("lease", r.opts.Lease), slog.Duration("poll_interval", r.opts.PollInterval),
		slog.Any("topics", r.claimTopics), slog.Bool("notifications", wake != nil))

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	idle := r.opts.PollInterval
	conflicts := 0 // consecutive retryable claim errors
	var gatherUntil time.Time
	for p.ctx.Err() == nil {
		limit, ok := p.awaitSlots(&gatherUntil, timer)
		if !ok {
			continue
		}
		msgs, err := p.claim(limit)
		if err != nil {
			if p.ctx.Err() != nil {
				break
			}
			if errors.Is(err, ports.ErrRetryable) {
				// A transient error (deadlock, busy, unreachable): the claim was rolled
				// back, so try again soon.
				d := claimRetryDelay(conflicts)
				conflicts++
				p.flog.failed(p.bg, "claim", slog.LevelWarn, "relay: claim hit a transient error (conflict, busy or unreachable database); retrying",
					slog.Any("error", err), slog.Int("conflicts", conflicts), slog.Duration("retry_in", d))
				p.sleep(timer, d, nil)
				continue
			}
			p.flog.failed(p.bg, "claim", slog.LevelError, "relay: claim failed; retrying after the idle interval",
				slog.Any("error", err), slog.Duration("retry_in", idle))
			p.sleep(timer, idle, nil)
			idle = min(2*idle, r.opts.MaxPollInterval)
			continue
		}
		conflicts = 0
		if p.ctx.Err() != nil {
			p.park(msgs) // claimed as the shutdown began: released, not handled
			break
		}
		p.dispatch(msgs)
		if len(msgs) >= limit {
			idle = r.opts.PollInterval
			continue // there may be more
		}
		if len(msgs) > 0 {
			idle = r.opts.PollInterval
		}
		if p.sleep(timer, idle, &wake) {
			idle = r.opts.PollInterval
		} else if len(msgs) == 0 {
			idle = min(2*idle, r.opts.MaxPollInterval)
		}
	}
	err := p.shutdown()
	res := p.result()
	r.log.LogAttrs(p.bg, slog.LevelInfo, "relay: stopped",
		slog.Int("claimed", res.Claimed), slog.Int("delivered", res.Delivered), slog.Int("retried", res.Retried),
		slog.Int("dead", res.DeadLettered), slog.Int("abandoned", res.Abandoned), slog.Int("released", res.Released))
	return err
}

// drain is Drain's loop.
func (p *pass) drain() (DrainResult, error) {
	r := p.r
	p.startWorkers()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	remaining := r.opts.MaxMessages // 0: no limit
	conflicts := 0                  // consecutive retryable claim errors
	var gatherUntil time.Time
	var claimErr error
	for p.ctx.Err() == nil {
		limit, ok := p.awaitSlots(&gatherUntil, timer)
		if !ok {
			continue
		}
		if r.opts.MaxMessages > 0 {
			limit = min(limit, remaining)
		}
		msgs, err := p.claim(limit)
		if err != nil {
			if p.ctx.Err() != nil {
				break
			}
			if errors.Is(err, ports.ErrRetryable) && conflicts < drainClaimRetries {
				d := claimRetryDelay(conflicts)
				conflicts++
				p.flog.failed(p.bg, "claim", slog.LevelWarn, "relay: claim hit a transient error (conflict, busy or unreachable database); retrying",
					slog.Any("error", err), slog.Int("conflicts", conflicts), slog.Duration("retry_in", d))
				p.sleep(timer, d, nil)
				continue
			}
			if conflicts > 0 {
				err = fmt.Errorf("%d consecutive claims failed, the last with: %w", conflicts+1, err)
			}
			claimErr = fmt.Errorf("relay: drain: %w", err)
			break
		}
		conflicts = 0
		if p.ctx.Err() != nil {
			p.park(msgs)
			break
		}
		p.dispatch(msgs)
		if r.opts.MaxMessages > 0 {
			if remaining -= len(msgs); remaining <= 0 {
				break
			}
		}
		if len(msgs) < limit {
			break // nothing more is ready
		}
	}
	select {
	case <-p.handlersDone():
	case <-p.ctx.Done(): // the shutdown below gives them ShutdownTimeout
	}
	var ctxErr error
	if err := p.ctx.Err(); err != nil {
		ctxErr = fmt.Errorf("relay: drain interrupted: %w", err)
	}
	err := p.shutdown()
	return p.result(), errors.Join(claimErr, ctxErr, err)
}

// awaitSlots returns how many messages to claim now. It returns ok=false
// after waiting for a slot (or for ctx), so the caller re-checks.
func (p *pass) awaitSlots(gatherUntil *time.Time, timer *time.Timer) (limit int, ok bool) {
	running := int(p.running.Load())
	free := p.r.opts.Concurrency - running
	if free <= 0 {
		select {
		case <-p.slotFreed:
		case <-p.ctx.Done():
		}
		return 0, false
	}
	// While handlers run, wait until a worthwhile number of slots is free,
	// but at most one poll interval (a few stuck handlers must not stop the
	// relay from using the slots it has).
	if running > 0 && free < p.threshold {
		if gatherUntil.IsZero() {
			*gatherUntil = time.Now().Add(p.r.opts.PollInterval)
		}
		if d := time.Until(*gatherUntil); d > 0 {
			timer.Reset(d)
			select {
			case <-p.slotFreed:
			case <-timer.C:
			case <-p.ctx.Done():
			}
			timer.Stop()
			return 0, false
		}
	}
	*gatherUntil = time.Time{}
	return min(free, p.r.opts.BatchSize), true
}

// sleep waits d, ctx's cancellation or (when wake is not nil) a
// notification; it reports whether a notification woke it.
func (p *pass) sleep(timer *time.Timer, d time.Duration, wake *<-chan struct{}) bool {
	var ch <-chan struct{}
	if wake != nil {
		ch = *wake
	}
	timer.Reset(d)
	defer timer.Stop()
	select {
	case <-p.ctx.Done():
	case <-timer.C:
	case _, ok := <-ch:
		if !ok {
			*wake = nil // notifications ended: poll
			return false
		}
		return true
	}
	return false
}

// Retryable claim errors (ports.ErrRetryable: a deadlock, a busy database)
// are retried after claimRetryDelay; Drain gives up after drainClaimRetries
// in a row and returns the error.
const (
	drainClaimRetries = 8
	claimRetryBase    = 5 * time.Millisecond
	claimRetryCap     = time.Second
)

// claimRetryDelay is the pause before retrying a claim after n earlier
// consecutive conflicts: claimRetryBase doubling up to claimRetryCap, the
// upper half jittered so that relays that deadlocked on each other do not
// collide again.
func claimRetryDelay(n int) time.Duration {
	d := claimRetryCap
	if n < 16 {
		d = min(claimRetryBase<<n, claimRetryCap)
	}
	return d/2 + rand.N(d/2+1)
}

// claim claims up to limit messages. It does not use the caller's ctx: a
// claim interrupted after it committed would leave messages locked that the
// relay does not know about. It is bounded by the lease instead.
func (p *pass) claim(limit int) ([]ports.ClaimedMessage, error) {
	// The completions go first: a claim and a Complete of the same relay
	// at once only compete for the database (and the Complete frees rows
	// the claim would otherwise pass), while the handlers keep running
	// meanwhile. The completer writes a batch now if it holds one
	// (threshold), after the write it may have under way.
	done := make(chan struct{})
	select {
	case p.flushReq <- done:
		<-done
	case <-p.completerDone:
	}
	ctx, cancel := context.WithTimeout(p.bg, p.r.opts.Lease)
	defer cancel()
	msgs, err := p.r.outbox.Claim(ctx, ports.ClaimOptions{Limit: limit, Lease: p.r.opts.Lease, Topics: p.r.claimTopics})
	if err != nil {
		p.failure("claim", limit, err)
		return nil, err
	}
	p.flog.recovered(p.bg, "claim", "relay: claims succeed again")
	if len(msgs) > 0 {
		p.mu.Lock()
		p.res.Claimed += len(msgs)
		p.mu.Unlock()
		p.r.log.LogAttrs(p.bg, slog.LevelDebug, "relay: claimed", slog.Int("count", len(msgs)), slog.Int("limit", limit))
	}
	return msgs, nil
}
