package conformance

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// lossyOutbox loses the claims of the next Complete calls: instead of
// completing the messages it releases them (as if the lease had expired and
// the claim was lost) and reports them lost, so the messages are delivered
// again although their handlers succeeded.
type lossyOutbox struct {
	wharf.Outbox
	lose atomic.Int32
}

func (l *lossyOutbox) Complete(ctx context.Context, claims ...ports.Claim) error {
	if l.lose.Add(-1) < 0 {
		l.lose.Store(0)
		return l.Outbox.Complete(ctx, claims...)
	}
	if err := l.Outbox.Release(ctx, claims...); err != nil {
		return err
	}
	ids := make([]string, len(claims))
	for i, c := range claims {
		ids[i] = c.ID
	}
	return &ports.ClaimLostError{Op: "complete", IDs: ids}
}

func testRelayEffectivelyOnce(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	lossy := &lossyOutbox{Outbox: ob}
	lossy.lose.Store(1)
	store := f.idempotency(f.db)
	ids := f.enqueue(ob, maxAttemptsJob("conf.relay.once", 5))
	var effects atomic.Int64
	once, err := relay.EffectivelyOnce(store, "conf.consumer", func(context.Context, ports.ClaimedMessage) error {
		effects.Add(1)
		return nil
	}, relay.EffectivelyOnceOptions{})
	require.NoError(t, err, "EffectivelyOnce")
	hs := f.handlers(func(hs *relay.Handlers) error { return hs.Handle("conf.relay.once", once, relay.TopicOptions{}) })
	w := newRelayWatch()
	require.Equal(t, relay.DrainResult{Claimed: 1, Abandoned: 1}, f.drain(lossy, hs, f.relayOptions(w)),
		"the handler succeeds but the completion is lost")
	require.EqualValues(t, 1, effects.Load())
	r := f.record(ob, ids[0])
	require.Equal(t, ports.StatusPending, r.Status, "so the message is delivered again")

	require.Equal(t, relay.DrainResult{Claimed: 1, Delivered: 1}, f.drain(lossy, hs, f.relayOptions(w)),
		"the redelivery counts as delivered")
	require.EqualValues(t, 1, effects.Load(), "the side effect happened once")
	require.Empty(t, f.listAll(ob))

	replay := f.reserve(store, ports.ReserveRequest{
		IdempotencyKey: ports.IdempotencyKey{Namespace: "conf.consumer", Key: ids[0]},
		Fingerprint:    core.Fingerprint([]byte("conf.relay.once"), []byte(`{"n":1}`)),
	})
	require.Equal(t, ports.Replay.String(), replay.Status.String(), "the message ID is the idempotency key")
}

func testRelayEffectivelyOnceInProgress(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	store := f.idempotency(f.db)
	ids := f.enqueue(ob, maxAttemptsJob("conf.relay.once", 5))
	// Another delivery of the same message holds the reservation.
	f.requireStatus(store, ports.ReserveRequest{
		IdempotencyKey: ports.IdempotencyKey{Namespace: "conf.consumer", Key: ids[0]},
		Fingerprint:    core.Fingerprint([]byte("conf.relay.once"), []byte(`{"n":1}`)),
		Lease:          time.Minute,
	}, ports.Reserved)
	var effects atomic.Int64
	once, err := relay.EffectivelyOnce(store, "conf.consumer", func(context.Context, ports.ClaimedMessage) error {
		effects.Add(1)
		return nil
	}, relay.EffectivelyOnceOptions{})
	require.NoError(t, err, "EffectivelyOnce")
	hs := f.handlers(func(hs *relay.Handlers) error { return hs.Handle("conf.relay.once", once, relay.TopicOptions{}) })
	w := newRelayWatch()
	require.Equal(t, relay.DrainResult{Claimed: 1, Retried: 1}, f.drain(ob, hs, f.relayOptions(w)))
	require.Zero(t, effects.Load(), "the handler does not run while another delivery holds the key")
	require.ErrorIs(t, w.await(t, relay.OutcomeRetried, ids[0]).Err, ports.ErrIdempotencyInProgress)
	r := f.record(ob, ids[0])
	require.Contains(t, r.LastError, "in progress")

	// The other delivery crashed: once its reservation lapses, the retry
	// takes it over and runs the handler.
	f.clock.Advance(time.Minute + testBackoff.Initial)
	require.Equal(t, relay.DrainResult{Claimed: 1, Delivered: 1}, f.drain(ob, hs, f.relayOptions(w)))
	require.EqualValues(t, 1, effects.Load())
}

func testRelayEffectivelyOnceTx(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	ob := f.outbox(f.db)
	lossy := &lossyOutbox{Outbox: ob}
	lossy.lose.Store(1)
	ids := f.enqueue(ob, maxAttemptsJob("conf.relay.once-tx", 5), maxAttemptsJob("conf.relay.once-tx", 5))
	uow, _ := f.unitOfWork(uowConfig{driver: f.idemConfig(), maxAttempts: 10})
	txStore := func(tx txPorts) ports.Idempotency { return tx.Idempotency }
	var calls atomic.Int64
	failOnce := map[string]*atomic.Bool{ids[1]: new(atomic.Bool)}
	once, err := relay.EffectivelyOnceTx(uow, txStore, "conf.consumer-tx",
		func(ctx context.Context, tx txPorts, m ports.ClaimedMessage) error {
			calls.Add(1)
			if err := insertItem(ctx, tx.DB, m.ID, "x"); err != nil {
				return err
			}
			if fail, ok := failOnce[m.ID]; ok && fail.CompareAndSwap(false, true) {
				return errors.New("conf: fails after writing; the transaction rolls back")
			}
			return nil
		}, relay.EffectivelyOnceOptions{})
	require.NoError(t, err, "EffectivelyOnceTx")
	hs := f.handlers(func(hs *relay.Handlers) error { return hs.Handle("conf.relay.once-tx", once, relay.TopicOptions{}) })
	w := newRelayWatch()
	opts := f.relayOptions(w)
	// Both messages fit one claim, so the pass ends before the lost one is
	// claimable again.
	opts.Concurrency = 3
	res := f.drain(lossy, hs, opts)
	require.Equal(t, relay.DrainResult{Claimed: 2, Abandoned: 1, Retried: 1}, res)
	require.Equal(t, []string{ids[0]}, f.items(), "the failed attempt's write was rolled back with its reservation")

	f.clock.Advance(testBackoff.Initial)
	res = f.drain(lossy, hs, opts)
	require.Equal(t, relay.DrainResult{Claimed: 2, Delivered: 2}, res)
	require.Equal(t, []string{ids[0], ids[1]}, f.items(), "each message's write committed exactly once")
	require.EqualValues(t, 3, calls.Load(), "the redelivery after success skipped the handler; the retry after failure ran it")
	require.Empty(t, f.listAll(ob))
}
