package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/wharf-go/wharf/ports"
)

// A pass's bookkeeping with the outbox: batched completions, lease
// extension, and the shutdown that releases what was not handled.

// completer batches successful messages into Complete calls. After a
// failed write it waits before writing them again, PollInterval doubling
// up to a quarter of the lease (the claims must be written before their
// leases end).
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
	var backoff time.Duration // after failed writes; zero while they succeed
	failed := func() {
		backoff = min(max(2*backoff, opts.PollInterval), max(opts.PollInterval, opts.Lease/4))
		arm(backoff)
	}
	// added decides what to do once messages joined buf: write it when it
	// holds a batch (or when write asks for it), else make sure the timer
	// writes it within CompleteInterval.
	added := func(write bool) {
		switch {
		case backoff > 0: // waiting to write again: the timer is armed
		case len(buf) >= opts.CompleteBatchSize || write && len(buf) > 0:
			var err error
			if buf, err = p.flush(buf, false); err != nil {
				failed()
			} else if armed {
				timer.Stop()
				armed = false
			}
		case len(buf) > 0 && !armed:
			arm(opts.CompleteInterval)
		}
	}
	for {
		select {
		case done := <-p.flushReq:
			// The claim loop is about to claim (see pass.claim); this runs
			// once the write under way, if any, has returned. A batch is
			// written now; fewer wait for the timer as usual.
		collect:
			for {
				select {
				case d, ok := <-p.completions:
					if !ok {
						break collect // the final flush follows below
					}
					buf = append(buf, d)
				default:
					break collect
				}
			}
			added(len(buf) >= p.threshold)
			close(done)
		case d, ok := <-p.completions:
			if !ok {
				timer.Stop()
				_, p.flushErr = p.flush(buf, true)
				return
			}
			buf = append(buf, d)
			added(false)
		case <-timer.C:
			armed = false
			var err error
			if buf, err = p.flush(buf, false); err != nil {
				failed()
			} else {
				backoff = 0
			}
		}
	}
}

// flush completes buf in batches of CompleteBatchSize. Messages whose
// completion failed for another reason than a lost claim are returned to be
// written again while their lease lasts (on the final flush they are
// reported abandoned and the error is returned).
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
	ctx, cancel := p.opCtx()
	defer cancel()
	claims := make([]ports.Claim, len(batch))
	for i, d := range batch {
		claims[i] = d.msg.Claim()
	}
	err := p.r.outbox.Complete(ctx, claims...)
	if err == nil {
		p.flog.recovered(p.bg, "complete", "relay: completions succeed again")
		p.reportAll(batch, OutcomeDelivered, nil, false, nil)
		return nil, nil
	}
	if lost, ok := lostIDs(err); ok {
		p.flog.recovered(p.bg, "complete", "relay: completions succeed again")
		p.reportAll(batch, OutcomeDelivered, lost, lost == nil, err)
		return nil, nil
	}
	// The outcome is unknown; the claims still hold until their leases end.
	p.failure("complete", len(batch), err)
	p.flog.failed(p.bg, "complete", slog.LevelError, "relay: complete failed; writing again after a pause", slog.Int("count", len(batch)),
		slog.Bool("final", final), slog.Any("error", err))
	now := p.r.now()
	var keep []*delivery
	for _, d := range batch {
		p.mu.Lock()
		expired := !now.Before(d.lockedUntil)
		p.mu.Unlock()
		if final || expired {
			p.report(d, Observation{Outcome: OutcomeAbandoned,
				Err: fmt.Errorf("relay: complete failed (the message is redelivered after its lease): %w", err)})
			continue
		}
		keep = append(keep, d)
	}
	return keep, fmt.Errorf("relay: complete: %w", err)
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
		ctx, cancel := p.opCtx()
		until, err := p.r.outbox.Extend(ctx, d.msg.Claim(), p.r.opts.Lease)
		cancel()
		p.mu.Lock()
		if err == nil {
			p.flog.recovered(p.bg, "extend", "relay: lease extensions succeed again")
		}
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
			o := Observation{Outcome: OutcomeAbandoned, Err: err}
			_, end := p.settleLocked(d, &o)
			p.mu.Unlock()
			d.cancel()
			end()
			p.emit(o)
		default:
			// A completing message's loss is reported by its Complete; other
			// errors are retried at the next check.
			p.mu.Unlock()
			if !errors.Is(err, ports.ErrClaimLost) {
				p.failure("extend", 1, err)
				p.flog.failed(p.bg, "extend", slog.LevelWarn, "relay: extending a lease failed; retrying",
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
	p.failure("release", len(ds), err)
	err = fmt.Errorf("relay: release on shutdown failed (the messages are redelivered after their leases): %w", err)
	p.reportAll(ds, OutcomeReleased, nil, true, err)
	return err
}

func (p *pass) result() DrainResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.res
}
