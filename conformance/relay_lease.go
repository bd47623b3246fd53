package conformance

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// blocker is a handler that announces each message it starts and then
// blocks until released (or, when honourCtx is set, until its ctx ends).
type blocker struct {
	started   chan ports.ClaimedMessage
	release   chan struct{}
	honourCtx bool
	// ctxErrs receives the handler ctx's error when it returns.
	ctxErrs chan error
	// result is what the handler returns once released.
	result error
}

func newBlocker(honourCtx bool) *blocker {
	return &blocker{started: make(chan ports.ClaimedMessage, 100), release: make(chan struct{}), honourCtx: honourCtx,
		ctxErrs: make(chan error, 100)}
}

func (b *blocker) handle(ctx context.Context, m ports.ClaimedMessage) error {
	b.started <- m
	defer func() { b.ctxErrs <- ctx.Err() }()
	if b.honourCtx {
		select {
		case <-b.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	} else {
		<-b.release
	}
	return b.result
}

// awaitStarted waits until n handlers started and returns their messages.
func (b *blocker) awaitStarted(t testing.TB, n int) []ports.ClaimedMessage {
	t.Helper()
	msgs := make([]ports.ClaimedMessage, 0, n)
	timeout := time.After(awaitTimeout)
	for len(msgs) < n {
		select {
		case m := <-b.started:
			msgs = append(msgs, m)
		case <-timeout:
			require.FailNow(t, "timed out waiting for handlers to start", "started %d of %d", len(msgs), n)
		}
	}
	return msgs
}

func (b *blocker) awaitReturned(t testing.TB) error {
	t.Helper()
	select {
	case err := <-b.ctxErrs:
		return err
	case <-time.After(awaitTimeout):
		require.FailNow(t, "timed out waiting for a handler to return")
		return nil
	}
}

func testRelayExtendsLease(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	ids := f.enqueue(ob, job("conf.relay.slow"))
	b := newBlocker(false)
	hs := f.handlers(func(hs *relay.Handlers) error { return hs.Handle("conf.relay.slow", b.handle, relay.TopicOptions{}) })
	w := newRelayWatch()
	done := f.startDrain(f.newRelay(ob, hs, f.relayOptions(w)))

	m := b.awaitStarted(t, 1)[0]
	requireTime(t, clockStart.Add(testLease), f.record(ob, ids[0]).LockedUntil)
	third := testLease/3 + time.Second
	for i := 1; i <= 3; i++ {
		f.clock.Advance(third)
		ext := w.awaitN(t, "lease extension", i, func(o relay.Observation) bool { return o.Outcome == relay.OutcomeExtended })[i-1]
		want := f.clock.Now().Add(testLease)
		requireTime(t, want, ext.LockedUntil, "extension %d: the lease runs for Lease from now", i)
		r := f.record(ob, ids[0])
		requireTime(t, want, r.LockedUntil, "extension %d is stored", i)
		require.Equal(t, 1, r.Attempts, "extending spends no attempt")
	}
	require.True(t, f.clock.Now().After(m.LockedUntil), "the original lease has ended by now")
	f.claimNone(ob, "the extended lease still holds the message")

	close(b.release)
	res, err := awaitDrain(t, done)
	require.NoError(t, err)
	require.Equal(t, relay.DrainResult{Claimed: 1, Delivered: 1}, res)
	require.Empty(t, f.listAll(ob))
}

func testRelayLostClaim(t *testing.T, h Harness) {
	tests := []struct {
		name   string
		result error
	}{
		{"HandlerSucceeds", nil},
		{"HandlerFails", errors.New("conf: late failure")},
		{"HandlerFailsPermanently", relay.Permanent(errors.New("conf: late poison"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, h)
			ob := f.outbox(f.db)
			ids := f.enqueue(ob, maxAttemptsJob("conf.relay.lost", 5))
			b := newBlocker(false)
			b.result = tt.result
			hs := f.handlers(func(hs *relay.Handlers) error { return hs.Handle("conf.relay.lost", b.handle, relay.TopicOptions{}) })
			w := newRelayWatch()
			opts := f.relayOptions(w)
			// The relay's clock stands still, so it never finds the lease due
			// for extension: the test decides when the lease expires.
			opts.Now = func() time.Time { return clockStart }
			done := f.startDrain(f.newRelay(ob, hs, opts))
			b.awaitStarted(t, 1)

			f.clock.Advance(testLease + time.Second)
			other := f.claimOne(ob)
			require.Equal(t, ids[0], other.ID, "the lease expired: another worker takes the message")
			require.Equal(t, 2, other.Attempts)

			close(b.release)
			res, err := awaitDrain(t, done)
			require.NoError(t, err)
			require.Equal(t, relay.DrainResult{Claimed: 1, Abandoned: 1}, res)
			abandoned := w.await(t, relay.OutcomeAbandoned, ids[0])
			require.ErrorIs(t, abandoned.Err, ports.ErrClaimLost, "the abandoned outcome reports the lost claim")
			require.Empty(t, w.outcomes(relay.OutcomeDelivered))

			r := f.record(ob, ids[0])
			require.Equal(t, ports.StatusPending, r.Status, "the stale outcome did not touch the new owner's state")
			require.Equal(t, 2, r.Attempts)
			require.Empty(t, r.LastError)
			requireTime(t, other.LockedUntil, r.LockedUntil)
			require.NoError(t, ob.Complete(f.ctx, other.Claim()), "the new owner still holds the message")
			require.Empty(t, f.listAll(ob))
		})
	}
}

func testRelayLostClaimCancels(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	ids := f.enqueue(ob, job("conf.relay.lost"))
	b := newBlocker(true)
	hs := f.handlers(func(hs *relay.Handlers) error { return hs.Handle("conf.relay.lost", b.handle, relay.TopicOptions{}) })
	w := newRelayWatch()
	done := f.startDrain(f.newRelay(ob, hs, f.relayOptions(w)))
	m := b.awaitStarted(t, 1)[0]

	// Someone else releases the claim (an operator, a bug): the relay finds
	// out when it next extends the lease.
	require.NoError(t, ob.Release(f.ctx, m.Claim()))
	f.clock.Advance(testLease/3 + time.Second)
	abandoned := w.await(t, relay.OutcomeAbandoned, ids[0])
	require.ErrorIs(t, abandoned.Err, ports.ErrClaimLost, "the abandoned outcome reports the lost claim")
	require.ErrorIs(t, b.awaitReturned(t), context.Canceled, "the handler's ctx is cancelled when its claim is lost")

	res, err := awaitDrain(t, done)
	require.NoError(t, err)
	require.Equal(t, relay.DrainResult{Claimed: 1, Abandoned: 1}, res)
	r := f.record(ob, ids[0])
	require.Equal(t, ports.StatusPending, r.Status)
	require.Zero(t, r.Attempts, "the release's refund stands: the relay's cancelled handler recorded nothing")
	require.Empty(t, r.LastError)
	require.True(t, r.LockedUntil.IsZero())
}

func testRelayShutdown(t *testing.T, h Harness) {
	tests := []struct {
		name string
		// honourCtx: the handlers return when their ctx is cancelled.
		honourCtx bool
		// finish: the handlers are released right after the cancellation
		// and finish within ShutdownTimeout.
		finish          bool
		shutdownTimeout time.Duration
	}{
		{"InFlightHandlersFinish", false, true, awaitTimeout},
		{"HandlersHonourCancellation", true, false, 20 * time.Millisecond},
		{"HandlersIgnoreCancellation", false, false, 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const running, total = 3, 5
			f := setup(t, h)
			ob := f.outbox(f.db)
			msgs := make([]ports.OutboxMessage, total)
			for i := range msgs {
				msgs[i] = maxAttemptsJob("conf.relay.block", 5)
			}
			ids := f.enqueue(ob, msgs...)
			b := newBlocker(tt.honourCtx)
			hs := f.handlers(func(hs *relay.Handlers) error { return hs.Handle("conf.relay.block", b.handle, relay.TopicOptions{}) })
			w := newRelayWatch()
			opts := f.relayOptions(w)
			opts.Concurrency = running
			opts.ShutdownTimeout = tt.shutdownTimeout
			logs := newLogRecorder()
			opts.Logger = newTestLogger(logs)
			stop := f.startRun(f.newRelay(ob, hs, opts))
			started := b.awaitStarted(t, running)
			for _, m := range started {
				require.Equal(t, 1, f.record(ob, m.ID).Attempts)
			}

			var runErr error
			if tt.finish {
				stopped := make(chan error, 1)
				go func() { stopped <- stop() }()
				// Release the handlers once the relay has stopped claiming.
				logs.await(t, "relay: shutting down; waiting for handlers")
				close(b.release)
				runErr = <-stopped
			} else {
				runErr = stop()
			}
			require.NoError(t, runErr, "Run returns nil on a clean shutdown")

			if tt.finish {
				require.Len(t, w.outcomes(relay.OutcomeDelivered), running, "in-flight handlers finished and were completed")
				require.Len(t, f.listAll(ob), total-running)
				require.Empty(t, w.outcomes(relay.OutcomeReleased))
			} else {
				require.Len(t, w.outcomes(relay.OutcomeReleased), running, "unfinished messages are released")
				recs := f.listAll(ob)
				require.Equal(t, ids, recordIDs(recs), "every message is still in the outbox")
				for _, r := range recs {
					require.Equal(t, ports.StatusPending, r.Status)
					require.True(t, r.LockedUntil.IsZero(), "message %s is not leased after the shutdown", r.ID)
					require.Zero(t, r.Attempts, "message %s's attempt was refunded", r.ID)
					require.Empty(t, r.LastError)
				}
				require.EqualValues(t, total, f.stats(ob).Ready, "all claimable at once: nothing waits for a lease to expire")
			}
			if !tt.honourCtx && !tt.finish {
				// The handlers finish after their messages were released: the
				// late successes must not complete anything.
				close(b.release)
				for range running {
					b.awaitReturned(t)
				}
				again := f.claim(ob, total)
				require.Len(t, again, total, "the late successes completed nothing")
			}
		})
	}
}

// crashOutbox is an outbox whose process "dies": after crash, every call
// fails, so the relay can neither record outcomes nor release its claims.
type crashOutbox struct {
	wharf.Outbox
	crashed atomic.Bool
}

var errCrashed = errors.New("conformance: the process crashed")

func (c *crashOutbox) Claim(ctx context.Context, opts ports.ClaimOptions) ([]ports.ClaimedMessage, error) {
	if c.crashed.Load() {
		return nil, errCrashed
	}
	return c.Outbox.Claim(ctx, opts)
}

func (c *crashOutbox) Complete(ctx context.Context, claims ...ports.Claim) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.Outbox.Complete(ctx, claims...)
}

func (c *crashOutbox) Retry(ctx context.Context, claim ports.Claim, opts ports.RetryOptions) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.Outbox.Retry(ctx, claim, opts)
}

func (c *crashOutbox) DeadLetter(ctx context.Context, claim ports.Claim, lastError string) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.Outbox.DeadLetter(ctx, claim, lastError)
}

func (c *crashOutbox) Extend(ctx context.Context, claim ports.Claim, lease time.Duration) (time.Time, error) {
	if c.crashed.Load() {
		return time.Time{}, errCrashed
	}
	return c.Outbox.Extend(ctx, claim, lease)
}

func (c *crashOutbox) Release(ctx context.Context, claims ...ports.Claim) error {
	if c.crashed.Load() {
		return errCrashed
	}
	return c.Outbox.Release(ctx, claims...)
}

func testRelayCrash(t *testing.T, h Harness) {
	const total, blocked = 10, 4
	f := setup(t, h)
	ob := f.outbox(f.db)
	msgs := make([]ports.OutboxMessage, total)
	for i := range msgs {
		msgs[i] = maxAttemptsJob("conf.relay.crash", 5)
	}
	ids := f.enqueue(ob, msgs...)

	// The first relay claims four messages and "crashes" while handling
	// them: nothing it does afterwards reaches the database.
	crashing := &crashOutbox{Outbox: ob}
	b := newBlocker(true)
	hs1 := f.handlers(func(hs *relay.Handlers) error { return hs.Handle("conf.relay.crash", b.handle, relay.TopicOptions{}) })
	w1 := newRelayWatch()
	opts1 := f.relayOptions(w1)
	opts1.Concurrency = blocked
	opts1.ShutdownTimeout = 10 * time.Millisecond
	stop := f.startRun(f.newRelay(crashing, hs1, opts1))
	interrupted := claimedIDs(b.awaitStarted(t, blocked))
	crashing.crashed.Store(true)
	require.ErrorIs(t, stop(), errCrashed, "the crashed relay could not release its claims")
	require.Len(t, w1.outcomes(relay.OutcomeAbandoned), blocked)
	for _, id := range interrupted {
		r := f.record(ob, id)
		require.Equal(t, 1, r.Attempts)
		require.True(t, r.LockedUntil.After(f.clock.Now()), "message %s stays locked until its lease expires", id)
	}
	require.Equal(t, total-blocked, int(f.stats(ob).Ready))

	// After the lease, a fresh relay delivers everything.
	f.clock.Advance(testLease + time.Second)
	var got seen
	hs2 := f.handlers(func(hs *relay.Handlers) error {
		return hs.Handle("conf.relay.crash", func(_ context.Context, m ports.ClaimedMessage) error {
			got.add(m)
			return nil
		}, relay.TopicOptions{})
	})
	res := f.drain(ob, hs2, f.relayOptions(newRelayWatch()))
	require.Equal(t, relay.DrainResult{Claimed: total, Delivered: total}, res)
	require.ElementsMatch(t, ids, got.ids(), "nothing is lost")
	for _, m := range got.all() {
		want := 1
		for _, id := range interrupted {
			if id == m.ID {
				want = 2
			}
		}
		require.Equal(t, want, m.Attempts, "message %s: the interrupted attempt counts", m.ID)
	}
	require.Empty(t, f.listAll(ob))
}
