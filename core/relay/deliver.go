package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

// A pass's deliveries: handing claimed messages to the workers, running
// the handler, and recording and reporting each outcome.

func (p *pass) extendAt(lockedUntil time.Time) time.Time {
	return lockedUntil.Add(-2 * p.r.opts.Lease / 3)
}

// cancel cancels the handler's context. The topic's timeout (stop) goes
// first: it deregisters from hc, so hc's cancel starts no goroutine for it.
func (d *delivery) cancel() {
	if d.stop != nil {
		d.stop()
	}
	d.hc.cancel()
}

// opCtx bounds one outbox call of the relay by the lease: past it the
// claims it writes for are void anyway, and a call stuck on a dead
// connection must not hold the pass (or its shutdown) forever.
func (p *pass) opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(p.bg, p.r.opts.Lease)
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
		ctx := p.observe(d)
		start := time.Now()
		err = p.call(ctx, d)
		ran = time.Since(start)
	} // else lost or released before a worker took it: the handler never runs
	d.cancel()
	p.finish(d, err, ran)
}

// observe starts the Hooks' delivery of d (continuing the trace its
// headers carry) and returns the handler's context.
func (p *pass) observe(d *delivery) context.Context {
	hooks := p.r.opts.Hooks
	if hooks.Start == nil {
		return d.ctx
	}
	ctx := d.ctx
	if hooks.Extract != nil {
		ctx = hooks.Extract(ctx, d.msg.Headers)
	}
	ctx, end := hooks.Start(ctx, core.Operation{Kind: core.OpDeliver, Topics: []string{d.msg.Topic},
		MessageID: d.msg.ID, Attempt: d.msg.Attempts, CreatedAt: d.msg.CreatedAt})
	p.mu.Lock()
	d.end = end
	p.mu.Unlock()
	return ctx
}

// freeSlot frees the slot of a message its worker is done with.
func (p *pass) freeSlot() {
	p.running.Add(-1)
	select {
	case p.slotFreed <- struct{}{}:
	default:
	}
}

// call runs the handler with ctx, turning a panic into a *PanicError.
func (p *pass) call(ctx context.Context, d *delivery) (err error) {
	defer func() {
		if v := recover(); v != nil {
			pe := &PanicError{Value: v, Stack: debug.Stack()}
			err = pe
			p.r.log.LogAttrs(p.bg, slog.LevelError, "relay: handler panicked",
				append(msgAttrs(d.msg), slog.String("panic", pe.Error()), slog.String("stack", string(pe.Stack)))...)
		}
	}()
	return d.route.h(ctx, d.msg)
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
	ctx, cancel := p.opCtx()
	defer cancel()
	if dec.dead {
		err := r.outbox.DeadLetter(ctx, d.msg.Claim(), text)
		p.settle(d, OutcomeDead, herr, err, time.Time{})
		return
	}
	at := r.now().Add(dec.delay)
	err := r.outbox.Retry(ctx, d.msg.Claim(), ports.RetryOptions{At: at, LastError: text})
	p.settle(d, OutcomeRetried, herr, err, at)
}

// settle reports the outcome of a Retry or DeadLetter call.
func (p *pass) settle(d *delivery, o Outcome, herr, opErr error, at time.Time) {
	switch {
	case opErr == nil:
		p.report(d, Observation{Outcome: o, Err: herr, RetryAt: at})
	case errors.Is(opErr, ports.ErrClaimLost):
		p.report(d, Observation{Outcome: OutcomeAbandoned, Err: opErr})
	default:
		p.report(d, Observation{Outcome: OutcomeAbandoned,
			Err: fmt.Errorf("relay: recording outcome %s failed (the message is redelivered after its lease): %w", o, errors.Join(opErr, herr))})
	}
}

// report records d's final outcome: o's Outcome, Err and RetryAt are set by
// the caller, the rest is filled in here.
func (p *pass) report(d *delivery, o Observation) {
	p.mu.Lock()
	ok, end := p.settleLocked(d, &o)
	p.mu.Unlock()
	if ok {
		end()
		p.emit(o)
	}
}

// settleLocked marks d done, counts o and fills it in; it reports false when
// d already had its outcome. The caller holds p.mu, and after unlocking
// calls end (which ends the Hooks' delivery) and emits o.
func (p *pass) settleLocked(d *delivery, o *Observation) (ok bool, end func()) {
	if d.state == stDone {
		return false, nothing
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
	case OutcomeAbandoned:
		p.res.Abandoned++
	case OutcomeReleased:
		p.res.Released++
	}
	p.fillLocked(d, o)
	if d.end == nil {
		return true, nothing
	}
	hookEnd, e := d.end, core.End{Outcome: string(o.Outcome), Err: o.Err, Duration: d.ran}
	d.end = nil
	return true, func() { hookEnd(e) }
}

func nothing() {}

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
	case OutcomeRetried, OutcomeAbandoned:
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
// Outcomes at warn level and above (retried, abandoned, dead) are
// rate-limited per outcome, so that an outage does not flood the log.
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
	if level >= slog.LevelWarn {
		p.flog.failed(p.bg, "outcome:"+string(o.Outcome), level, "relay: message "+string(o.Outcome), attrs...)
		return
	}
	p.r.log.LogAttrs(p.bg, level, "relay: message "+string(o.Outcome), attrs...)
}

// reportAll records the final outcomes of a batch under one lock: every
// delivery gets ok's outcome, except those in lost (all of them when lost
// is nil and lostAll is set), which get an abandoned outcome with lostErr.
func (p *pass) reportAll(ds []*delivery, ok Outcome, lost map[string]bool, lostAll bool, lostErr error) {
	// Observations nobody reads (no Observer, level disabled) are not kept.
	observed := p.r.opts.Observer != nil
	keepOK := observed || p.r.log.Enabled(p.bg, outcomeLevel(ok))
	keepLost := observed || p.r.log.Enabled(p.bg, outcomeLevel(OutcomeAbandoned))
	var obs []Observation
	if keepOK {
		obs = make([]Observation, 0, len(ds))
	}
	var ends []func() // only with Hooks: the hot path allocates nothing more
	hooked := p.r.opts.Hooks.Start != nil
	p.mu.Lock()
	for _, d := range ds {
		o := Observation{Outcome: ok}
		keep := keepOK
		if lostAll || lost[d.msg.ID] {
			o, keep = Observation{Outcome: OutcomeAbandoned, Err: lostErr}, keepLost
		}
		settled, end := p.settleLocked(d, &o)
		if settled && hooked {
			ends = append(ends, end)
		}
		if settled && keep {
			obs = append(obs, o)
		}
	}
	p.mu.Unlock()
	for _, end := range ends {
		end()
	}
	for _, o := range obs {
		p.emit(o)
	}
}
