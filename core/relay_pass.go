package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

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

	pool      workerPool    // runs the handlers
	slotFreed chan struct{} // coalesced: a slot became free
	handlers  sync.WaitGroup
	doneOnce  sync.Once
	allDone   chan struct{} // closed when every dispatched handler returned

	sends         sync.WaitGroup // workers sending to completions
	completions   chan *delivery
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
		completerDone: make(chan struct{}),
		keeperStop:    make(chan struct{}),
		keeperDone:    make(chan struct{}),
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
		if err != nil {
			r.log.LogAttrs(p.bg, slog.LevelWarn, "relay: outbox notifications unavailable; polling", slog.Any("error", err))
		} else {
			wake = ch
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
				// A transient conflict (deadlock, busy): the claim was rolled
				// back, so try again soon.
				d := claimRetryDelay(conflicts)
				conflicts++
				r.log.LogAttrs(p.bg, slog.LevelWarn, "relay: claim hit a transient conflict; retrying",
					slog.Any("error", err), slog.Int("conflicts", conflicts), slog.Duration("retry_in", d))
				p.sleep(timer, d, nil)
				continue
			}
			r.log.LogAttrs(p.bg, slog.LevelError, "relay: claim failed; retrying after the idle interval",
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
		slog.Int("dead", res.DeadLettered), slog.Int("lost", res.Lost), slog.Int("released", res.Released))
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
				r.log.LogAttrs(p.bg, slog.LevelWarn, "relay: claim hit a transient conflict; retrying",
					slog.Any("error", err), slog.Int("conflicts", conflicts), slog.Duration("retry_in", d))
				p.sleep(timer, d, nil)
				continue
			}
			if conflicts > 0 {
				err = fmt.Errorf("%d consecutive claims failed, the last with: %w", conflicts+1, err)
			}
			claimErr = fmt.Errorf("core: relay drain: %w", err)
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
		ctxErr = fmt.Errorf("core: relay drain interrupted: %w", err)
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
	ctx, cancel := context.WithTimeout(p.bg, p.r.opts.Lease)
	defer cancel()
	msgs, err := p.r.outbox.Claim(ctx, ports.ClaimOptions{Limit: limit, Lease: p.r.opts.Lease, Topics: p.r.claimTopics})
	if err != nil {
		return nil, err
	}
	if len(msgs) > 0 {
		p.mu.Lock()
		p.res.Claimed += len(msgs)
		p.mu.Unlock()
		p.r.log.LogAttrs(p.bg, slog.LevelDebug, "relay: claimed", slog.Int("count", len(msgs)), slog.Int("limit", limit))
	}
	return msgs, nil
}

func (p *pass) extendAt(lockedUntil time.Time) time.Time {
	return lockedUntil.Add(-2 * p.r.opts.Lease / 3)
}

// cancel cancels the handler's context.
func (d *delivery) cancel() {
	d.hc.cancel()
	if d.stop != nil {
		d.stop()
	}
}

// dispatch hands the messages to the worker pool.
func (p *pass) dispatch(msgs []ports.ClaimedMessage) {
	if len(msgs) == 0 {
		return
	}
	// One allocation per message, not one array per batch: a slow handler
	// must not keep the payloads of its whole batch alive.
	ds := make([]*delivery, len(msgs))
	var now time.Time // relay clock, read once when needed
	started := time.Now()
	for i := range msgs {
		m := &msgs[i]
		d := &delivery{msg: *m, route: p.r.handlers.lookup(*m), started: started}
		ds[i] = d
		d.hc.Context = p.bg
		d.ctx = &d.hc
		if t := d.route.opts.Timeout; t > 0 {
			d.ctx, d.stop = context.WithTimeout(&d.hc, t)
		}
		locked := m.LockedUntil
		if locked.IsZero() {
			if now.IsZero() {
				now = p.r.now()
			}
			locked = now.Add(p.r.opts.Lease)
		}
		d.lockedUntil, d.extendAt = locked, p.extendAt(locked)
	}
	p.handlers.Add(len(ds))
	p.running.Add(int64(len(ds)))
	p.mu.Lock()
	for _, d := range ds {
		p.linkLocked(d)
	}
	p.mu.Unlock()
	p.pool.push(ds)
}

// linkLocked adds d to the live ring.
func (p *pass) linkLocked(d *delivery) {
	d.prev, d.next = p.live.prev, &p.live
	p.live.prev.next = d
	p.live.prev = d
}

// unlinkLocked removes d from the live ring (if it is in it).
func (p *pass) unlinkLocked(d *delivery) {
	if d.next == nil {
		return
	}
	d.prev.next, d.next.prev = d.next, d.prev
	d.prev, d.next = nil, nil
}

// park holds messages claimed while the shutdown began without handling
// them: the shutdown releases them.
func (p *pass) park(msgs []ports.ClaimedMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		p.linkLocked(&delivery{msg: m, route: p.r.handlers.lookup(m), started: time.Now(),
			state: stInterrupted, lockedUntil: m.LockedUntil, extendAt: p.extendAt(m.LockedUntil)})
	}
}

// handle runs one handler and records its outcome.
func (p *pass) handle(d *delivery) {
	defer p.handlers.Done()
	err := d.ctx.Err()
	var ran time.Duration
	if err == nil {
		start := time.Now()
		err = p.call(d)
		ran = time.Since(start)
	} // else lost or released before a worker took it: the handler never runs
	d.cancel()
	p.finish(d, err, ran)
}

// freeSlot frees the slot of a message its worker is done with.
func (p *pass) freeSlot() {
	p.running.Add(-1)
	select {
	case p.slotFreed <- struct{}{}:
	default:
	}
}

// call runs the handler, turning a panic into a *PanicError.
func (p *pass) call(d *delivery) (err error) {
	defer func() {
		if v := recover(); v != nil {
			pe := &PanicError{Value: v, Stack: debug.Stack()}
			err = pe
			p.r.log.LogAttrs(p.bg, slog.LevelError, "relay: handler panicked",
				append(msgAttrs(d.msg), slog.String("panic", pe.Error()), slog.String("stack", string(pe.Stack)))...)
		}
	}()
	return d.route.h(d.ctx, d.msg)
}

// finish records the outcome of a handler that returned err after running
// for ran, and frees its slot.
func (p *pass) finish(d *delivery, err error, ran time.Duration) {
	defer p.freeSlot()
	p.mu.Lock()
	d.ran = ran
	if d.state != stRunning {
		// The claim was lost (or the shutdown released the message) while
		// the handler ran: its outcome must not touch the new owner's state.
		p.mu.Unlock()
		if p.r.log.Enabled(p.bg, slog.LevelWarn) {
			p.r.log.LogAttrs(p.bg, slog.LevelWarn, "relay: handler outcome discarded: the claim is no longer held",
				append(msgAttrs(d.msg), slog.Bool("succeeded", err == nil))...)
		}
		return
	}
	switch {
	case err == nil:
		d.state = stCompleting
		p.sends.Add(1)
		p.mu.Unlock()
		p.completions <- d
		p.sends.Done()
	case p.cancelled:
		// Interrupted by the shutdown: not the message's fault. The shutdown
		// releases it, refunding the attempt.
		d.state = stInterrupted
		p.mu.Unlock()
	default:
		d.state = stRecording
		p.mu.Unlock()
		p.recordFailure(d, err)
	}
}

// recordFailure retries or dead-letters a message whose handler failed.
func (p *pass) recordFailure(d *delivery, herr error) {
	r := p.r
	dec := r.decide(d.route, d.msg, herr)
	text := lastErrorText(herr)
	if dec.dead {
		err := r.outbox.DeadLetter(p.bg, d.msg.Claim(), text)
		p.settle(d, OutcomeDead, herr, err, time.Time{})
		return
	}
	at := r.now().Add(dec.delay)
	err := r.outbox.Retry(p.bg, d.msg.Claim(), ports.RetryOptions{At: at, LastError: text})
	p.settle(d, OutcomeRetried, herr, err, at)
}

// settle reports the outcome of a Retry or DeadLetter call.
func (p *pass) settle(d *delivery, o Outcome, herr, opErr error, at time.Time) {
	switch {
	case opErr == nil:
		p.report(d, Observation{Outcome: o, Err: herr, RetryAt: at})
	case errors.Is(opErr, ports.ErrClaimLost):
		p.report(d, Observation{Outcome: OutcomeLost, Err: opErr})
	default:
		p.report(d, Observation{Outcome: OutcomeLost,
			Err: fmt.Errorf("core: relay: recording outcome %s failed (the message is redelivered after its lease): %w", o, errors.Join(opErr, herr))})
	}
}

// report records d's final outcome: o's Outcome, Err and RetryAt are set by
// the caller, the rest is filled in here.
func (p *pass) report(d *delivery, o Observation) {
	p.mu.Lock()
	ok := p.settleLocked(d, &o)
	p.mu.Unlock()
	if ok {
		p.emit(o)
	}
}

// settleLocked marks d done, counts o and fills it in; it reports false when
// d already had its outcome. The caller holds p.mu and emits o.
func (p *pass) settleLocked(d *delivery, o *Observation) bool {
	if d.state == stDone {
		return false
	}
	d.state = stDone
	p.unlinkLocked(d)
	switch o.Outcome {
	case OutcomeDelivered:
		p.res.Delivered++
	case OutcomeRetried:
		p.res.Retried++
	case OutcomeDead:
		p.res.DeadLettered++
	case OutcomeLost:
		p.res.Lost++
	case OutcomeReleased:
		p.res.Released++
	}
	p.fillLocked(d, o)
	return true
}

func (p *pass) fillLocked(d *delivery, o *Observation) {
	o.Topic, o.Kind, o.MessageID, o.Attempt = d.msg.Topic, d.msg.Kind, d.msg.ID, d.msg.Attempts
	if d.ran > 0 {
		o.Duration = d.ran
	} else {
		o.Duration = time.Since(d.started)
	}
}

func msgAttrs(m ports.ClaimedMessage) []slog.Attr {
	return []slog.Attr{slog.String("topic", m.Topic), slog.String("message_id", m.ID), slog.Int("attempt", m.Attempts)}
}

// emit logs o and passes it to the observer.
func (p *pass) emit(o Observation) {
	p.log(o)
	if p.r.opts.Observer != nil {
		p.r.opts.Observer(p.bg, o)
	}
}

// outcomeLevel is the log level of an outcome.
func outcomeLevel(o Outcome) slog.Level {
	switch o {
	case OutcomeRetried, OutcomeLost:
		return slog.LevelWarn
	case OutcomeDead:
		return slog.LevelError
	case OutcomeReleased:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

// log logs o, building its record only when the level is enabled.
func (p *pass) log(o Observation) {
	level := outcomeLevel(o.Outcome)
	if !p.r.log.Enabled(p.bg, level) {
		return
	}
	attrs := []slog.Attr{slog.String("topic", o.Topic), slog.String("message_id", o.MessageID),
		slog.Int("attempt", o.Attempt), slog.Duration("duration", o.Duration)}
	if o.Err != nil {
		attrs = append(attrs, slog.String("error", o.Err.Error()))
	}
	switch o.Outcome {
	case OutcomeRetried:
		attrs = append(attrs, slog.Time("retry_at", o.RetryAt))
	case OutcomeExtended:
		attrs = append(attrs, slog.Time("locked_until", o.LockedUntil))
	}
	p.r.log.LogAttrs(p.bg, level, "relay: message "+string(o.Outcome), attrs...)
}

// reportAll records the final outcomes of a batch under one lock: every
// delivery gets ok's outcome, except those in lost (all of them when lost
// is nil and lostAll is set), which get a lost outcome with lostErr.
func (p *pass) reportAll(ds []*delivery, ok Outcome, lost map[string]bool, lostAll bool, lostErr error) {
	// Observations nobody reads (no Observer, level disabled) are not kept.
	observed := p.r.opts.Observer != nil
	keepOK := observed || p.r.log.Enabled(p.bg, outcomeLevel(ok))
	keepLost := observed || p.r.log.Enabled(p.bg, outcomeLevel(OutcomeLost))
	var obs []Observation
	if keepOK {
		obs = make([]Observation, 0, len(ds))
	}
	p.mu.Lock()
	for _, d := range ds {
		o := Observation{Outcome: ok}
		keep := keepOK
		if lostAll || lost[d.msg.ID] {
			o, keep = Observation{Outcome: OutcomeLost, Err: lostErr}, keepLost
		}
		if p.settleLocked(d, &o) && keep {
			obs = append(obs, o)
		}
	}
	p.mu.Unlock()
	for _, o := range obs {
		p.emit(o)
	}
}

// completer batches successful messages into Complete calls.
func (p *pass) completer() {
	defer close(p.completerDone)
	opts := p.r.opts
	var buf []*delivery
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	arm := func(d time.Duration) {
		timer.Reset(d)
		armed = true
	}
	for {
		select {
		case d, ok := <-p.completions:
			if !ok {
				timer.Stop()
				_, p.flushErr = p.flush(buf, true)
				return
			}
			buf = append(buf, d)
			if len(buf) >= opts.CompleteBatchSize {
				var err error
				if buf, err = p.flush(buf, false); err != nil {
					arm(opts.PollInterval)
				} else if armed {
					timer.Stop()
					armed = false
				}
			} else if !armed {
				arm(opts.CompleteInterval)
			}
		case <-timer.C:
			armed = false
			var err error
			if buf, err = p.flush(buf, false); err != nil {
				arm(opts.PollInterval) // back off before writing them again
			}
		}
	}
}

// flush completes buf in batches of CompleteBatchSize. Messages whose
// completion failed for another reason than a lost claim are returned to be
// written again while their lease lasts (on the final flush they are
// reported lost and the error is returned).
func (p *pass) flush(buf []*delivery, final bool) ([]*delivery, error) {
	var keep []*delivery
	var errs []error
	for len(buf) > 0 {
		n := min(len(buf), p.r.opts.CompleteBatchSize)
		batch := buf[:n]
		buf = buf[n:]
		k, err := p.completeBatch(batch, final)
		keep = append(keep, k...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return keep, errors.Join(errs...)
}

func (p *pass) completeBatch(batch []*delivery, final bool) ([]*delivery, error) {
	ctx := p.bg
	if final {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(p.bg, p.r.opts.Lease)
		defer cancel()
	}
	claims := make([]ports.Claim, len(batch))
	for i, d := range batch {
		claims[i] = d.msg.Claim()
	}
	err := p.r.outbox.Complete(ctx, claims...)
	if err == nil {
		p.reportAll(batch, OutcomeDelivered, nil, false, nil)
		return nil, nil
	}
	if lost, ok := lostIDs(err); ok {
		p.reportAll(batch, OutcomeDelivered, lost, lost == nil, err)
		return nil, nil
	}
	// The outcome is unknown; the claims still hold until their leases end.
	p.r.log.LogAttrs(p.bg, slog.LevelError, "relay: complete failed", slog.Int("count", len(batch)),
		slog.Bool("final", final), slog.Any("error", err))
	now := p.r.now()
	var keep []*delivery
	for _, d := range batch {
		p.mu.Lock()
		expired := !now.Before(d.lockedUntil)
		p.mu.Unlock()
		if final || expired {
			p.report(d, Observation{Outcome: OutcomeLost,
				Err: fmt.Errorf("core: relay: complete failed (the message is redelivered after its lease): %w", err)})
			continue
		}
		keep = append(keep, d)
	}
	return keep, fmt.Errorf("core: relay: complete: %w", err)
}

// lostIDs reads a batch operation's lost claims: ok is false when err is not
// about lost claims; a nil set means all of them (the error names none).
func lostIDs(err error) (ids map[string]bool, ok bool) {
	var cle *ports.ClaimLostError
	if errors.As(err, &cle) {
		ids = make(map[string]bool, len(cle.IDs))
		for _, id := range cle.IDs {
			ids[id] = true
		}
		return ids, true
	}
	if errors.Is(err, ports.ErrClaimLost) {
		return nil, true
	}
	return nil, false
}

// keeper extends the leases of messages still held a third of the way into
// their lease, checking every min(PollInterval, Lease/6).
func (p *pass) keeper() {
	defer close(p.keeperDone)
	interval := max(min(p.r.opts.PollInterval, p.r.opts.Lease/6), time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.keeperStop:
			return
		case <-t.C:
			p.extendDue()
		}
	}
}

func held(s deliveryState) bool {
	return s == stRunning || s == stInterrupted || s == stCompleting
}

func (p *pass) extendDue() {
	now := p.r.now()
	p.mu.Lock()
	var due []*delivery
	for d := p.live.next; d != &p.live; d = d.next {
		if held(d.state) && !now.Before(d.extendAt) {
			due = append(due, d)
		}
	}
	p.mu.Unlock()
	for _, d := range due {
		until, err := p.r.outbox.Extend(p.bg, d.msg.Claim(), p.r.opts.Lease)
		p.mu.Lock()
		switch {
		case err == nil:
			if !held(d.state) {
				p.mu.Unlock()
				continue
			}
			d.lockedUntil, d.extendAt = until, p.extendAt(until)
			o := Observation{Outcome: OutcomeExtended, LockedUntil: until}
			p.fillLocked(d, &o)
			p.mu.Unlock()
			p.emit(o)
		case errors.Is(err, ports.ErrClaimLost) && (d.state == stRunning || d.state == stInterrupted):
			// Another worker owns the message now: stop the handler and
			// discard whatever it returns.
			o := Observation{Outcome: OutcomeLost, Err: err}
			p.settleLocked(d, &o)
			p.mu.Unlock()
			d.cancel()
			p.emit(o)
		default:
			// A completing message's loss is reported by its Complete; other
			// errors are retried at the next check.
			p.mu.Unlock()
			if !errors.Is(err, ports.ErrClaimLost) {
				p.r.log.LogAttrs(p.bg, slog.LevelWarn, "relay: extending a lease failed; retrying",
					append(msgAttrs(d.msg), slog.Any("error", err))...)
			}
		}
	}
}

func (p *pass) handlersDone() <-chan struct{} {
	p.doneOnce.Do(func() {
		p.allDone = make(chan struct{})
		go func() {
			p.handlers.Wait()
			close(p.allDone)
		}()
	})
	return p.allDone
}

// shutdown ends a pass: it waits for the handlers (cancelling them after
// ShutdownTimeout), writes the pending completions and releases every
// message still held without an outcome.
func (p *pass) shutdown() error {
	r := p.r
	done := p.handlersDone()
	select {
	case <-done:
	default:
		n := int(p.running.Load())
		r.log.LogAttrs(p.bg, slog.LevelInfo, "relay: shutting down; waiting for handlers",
			slog.Int("running", n), slog.Duration("timeout", r.opts.ShutdownTimeout))
		timer := time.NewTimer(r.opts.ShutdownTimeout)
		select {
		case <-done:
		case <-timer.C:
			p.mu.Lock()
			p.cancelled = true
			var running []*delivery
			for d := p.live.next; d != &p.live; d = d.next {
				if d.state == stRunning {
					running = append(running, d)
				}
			}
			p.mu.Unlock()
			n := int(p.running.Load())
			r.log.LogAttrs(p.bg, slog.LevelWarn, "relay: shutdown timeout: cancelling handlers", slog.Int("running", n))
			for _, d := range running {
				d.cancel()
			}
			timer.Reset(min(r.opts.ShutdownTimeout, time.Second))
			select {
			case <-done:
			case <-timer.C:
				r.log.LogAttrs(p.bg, slog.LevelWarn, "relay: handlers ignore cancellation; releasing their messages anyway")
			}
		}
		timer.Stop()
	}

	// From here on no handler records an outcome: what still runs is
	// released, and its result is discarded when it returns.
	p.mu.Lock()
	var release []*delivery
	for d := p.live.next; d != &p.live; d = d.next {
		if d.state == stRunning || d.state == stInterrupted {
			d.state = stReleasing
			release = append(release, d)
		}
	}
	p.mu.Unlock()
	p.pool.close() // the loop has ended: nothing more is dispatched
	p.sends.Wait()
	close(p.completions)
	<-p.completerDone
	close(p.keeperStop)
	<-p.keeperDone
	return errors.Join(p.flushErr, p.release(release))
}

// release gives messages back unhandled.
func (p *pass) release(ds []*delivery) error {
	if len(ds) == 0 {
		return nil
	}
	for _, d := range ds {
		d.cancel()
	}
	ctx, cancel := context.WithTimeout(p.bg, p.r.opts.Lease)
	defer cancel()
	claims := make([]ports.Claim, len(ds))
	for i, d := range ds {
		claims[i] = d.msg.Claim()
	}
	err := p.r.outbox.Release(ctx, claims...)
	if err == nil {
		p.reportAll(ds, OutcomeReleased, nil, false, nil)
		return nil
	}
	if lost, ok := lostIDs(err); ok {
		p.reportAll(ds, OutcomeReleased, lost, lost == nil, err)
		return nil
	}
	err = fmt.Errorf("core: relay: release on shutdown failed (the messages are redelivered after their leases): %w", err)
	p.reportAll(ds, OutcomeReleased, nil, true, err)
	return err
}

func (p *pass) result() DrainResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res
}
