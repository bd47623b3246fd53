package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

// outboxCursorTests cover the claim cursor (wharf.ClaimWindow,
// wharf.ClaimRescanInterval): claims start where the last one ended, and
// every message that becomes claimable behind that point is still handed
// out, at once when this driver made it so, and within ClaimRescanInterval
// of the driver's clock otherwise.
func outboxCursorTests() []testCase {
	return []testCase{
		{"SuccessorOfACompletedKeyedMessageIsClaimableAtOnce", testCursorKeyedSuccessor},
		{"ReleasedMessageIsClaimableAtOnceAfterTheCursorMoved", testCursorRelease},
		{"EnqueueInThePastIsClaimableAtOnce", testCursorEnqueuePast},
		{"MessageBehindTheCursorFromAnotherDriverIsFoundWithinTheRescanInterval", testCursorOtherDriver},
		{"ExpiredLeaseBehindTheCursorIsReclaimedWithinTheRescanInterval", testCursorExpiredLease},
		{"LateCommitIsDeliveredWithinTheRescanInterval", testCursorLateCommit},
		{"LateCommitOfAUnitOfWorkOfTheSameDriverIsClaimableAtOnce", testCursorLateUnitOfWork},
	}
}

// moveCursor advances the clock by d, then enqueues, claims and completes
// one message, so that ob's claim cursor (of claims without a topic
// filter, as every claim of these tests) moves past everything older.
// Nothing else may be claimable then.
func (f *fixture) moveCursor(ob wharf.Outbox, d time.Duration) {
	f.t.Helper()
	f.clock.Advance(d)
	ids := f.enqueue(ob, job("conf.cursor.later"))
	msgs := f.claim(ob, 10)
	require.Equal(f.t, ids, claimedIDs(msgs), "only the message just enqueued is claimable")
	require.NoError(f.t, ob.Complete(f.ctx, msgs[0].Claim()))
}

func testCursorKeyedSuccessor(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	ids := f.enqueue(ob, keyed("conf.cursor.k", "k"), keyed("conf.cursor.k", "k"))
	first := f.claimOne(ob)
	require.Equal(t, ids[0], first.ID)
	f.moveCursor(ob, 10*time.Second)
	f.claimNone(ob, "the successor waits for the first message")

	require.NoError(t, ob.Complete(f.ctx, first.Claim()))
	next := f.claim(ob, 10)
	require.Equal(t, ids[1:], claimedIDs(next), "completing a keyed message frees its successor at once, though the cursor moved past it")
}

func testCursorRelease(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	ids := f.enqueue(ob, job("conf.cursor.r"))
	m := f.claimOne(ob)
	f.moveCursor(ob, 10*time.Second)
	require.NoError(t, ob.Release(f.ctx, m.Claim()))
	require.Equal(t, ids, claimedIDs(f.claim(ob, 10)), "a released message is claimable at once")
}

func testCursorEnqueuePast(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	f.moveCursor(ob, 10*time.Second)
	past := job("conf.cursor.past")
	past.AvailableAt = f.clock.Now().Add(-time.Hour)
	ids := f.enqueue(ob, past)
	require.Equal(t, ids, claimedIDs(f.claim(ob, 10)), "a message enqueued with an AvailableAt in the past is claimable at once")
}

// requireFoundWithinRescan claims from ob, advancing the clock by
// wharf.ClaimRescanInterval once, and asserts that the message with id is
// handed out (it may be before the interval has passed). The sweep that
// finds it runs in the background, so the claims are retried for a few
// seconds of real time.
func (f *fixture) requireFoundWithinRescan(ob wharf.Outbox, id, why string) {
	f.t.Helper()
	if got := f.claim(ob, 10); len(got) > 0 {
		require.Equal(f.t, []string{id}, claimedIDs(got), why)
		return
	}
	f.clock.Advance(wharf.ClaimRescanInterval)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := f.claim(ob, 10); len(got) > 0 {
			require.Equal(f.t, []string{id}, claimedIDs(got), why)
			return
		}
		require.True(f.t, time.Now().Before(deadline), "not claimed within 10s of real time after the rescan interval: %s", why)
		<-tick.C
	}
}

func testCursorOtherDriver(t *testing.T, h Harness) {
	f := setup(t, h)
	claimer := f.outbox(f.db)
	producer := f.outbox(f.db) // another driver: its enqueues do not move claimer's cursor
	f.moveCursor(claimer, 10*time.Second)
	past := job("conf.cursor.other")
	past.AvailableAt = f.clock.Now().Add(-time.Minute)
	ids := f.enqueue(producer, past)
	f.requireFoundWithinRescan(claimer, ids[0], "another driver's message behind the cursor is found within ClaimRescanInterval")
}

func testCursorExpiredLease(t *testing.T, h Harness) {
	f := setup(t, h)
	crashed := f.outbox(f.db) // claims and never settles: a crashed worker
	ob := f.outbox(f.db)
	ids := f.enqueue(ob, job("conf.cursor.lease"))
	first, err := crashed.Claim(f.ctx, ports.ClaimOptions{Limit: 1, Lease: 30 * time.Second})
	require.NoError(t, err)
	require.Equal(t, ids, claimedIDs(first))
	for range 3 { // ob's cursor moves past the leased message
		f.moveCursor(ob, 2*time.Second)
	}
	f.clock.Advance(30 * time.Second) // the lease expires
	f.requireFoundWithinRescan(ob, ids[0], "an expired lease behind the cursor is reclaimed within ClaimRescanInterval")
}

// testCursorLateCommit: a producer's transaction stamps its message, then
// commits after other messages were claimed and the cursor moved far past
// the stamp. The message is delivered within ClaimRescanInterval of the
// commit.
func testCursorLateCommit(t *testing.T, h Harness) {
	f := setup(t, h)
	claimer := f.outbox(f.db)
	producer := f.driver(config{})
	f.moveCursor(claimer, time.Second) // the cursor starts here
	tx, err := f.db.BeginTx(f.ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback() })
	ids, err := producer.Bind(tx).Outbox.Enqueue(f.ctx, job("conf.cursor.late"))
	require.NoError(t, err)

	if h.Capabilities.ConcurrentWriters {
		for range 5 { // ten seconds of other traffic, claimed while the transaction is open
			f.moveCursor(claimer, 2*time.Second)
		}
		f.claimNone(claimer, "the late message is not committed yet")
	} else {
		// Write transactions run one at a time: no claim can move the
		// cursor past the message while it is uncommitted, but the clock
		// moves on.
		f.clock.Advance(10 * time.Second)
	}
	require.NoError(t, tx.Commit())
	f.requireFoundWithinRescan(claimer, ids[0], "a message committed late is delivered within ClaimRescanInterval of its commit")
}

// testCursorLateUnitOfWork: a unit of work of the claiming driver that
// commits more than ClaimWindow after its enqueue, while claims moved the
// cursor past the message (where writers run concurrently), moves the
// cursor back at its commit: the next claim finds the message, before any
// rescan is due. On a dialect with one writer at a time no claim can pass
// the uncommitted message, so there it checks only that the message is
// claimable at once after the late commit.
func testCursorLateUnitOfWork(t *testing.T, h Harness) {
	f := setup(t, h)
	drv := f.driver(config{})
	ob := drv.Outbox()
	uow := f.txUnitOfWork(drv, wharf.UnitOfWorkOptions{MaxAttempts: 1})
	late := 3 * wharf.ClaimWindow
	require.Less(t, late, wharf.ClaimRescanInterval, "the test must stay clear of the rescan")
	f.moveCursor(ob, time.Second) // the cursor starts here
	var ids []string
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx wharf.Tx) error {
		var err error
		if ids, err = tx.Outbox.Enqueue(ctx, job("conf.cursor.late-uow")); err != nil {
			return err
		}
		if h.Capabilities.ConcurrentWriters {
			f.moveCursor(ob, late) // claims pass the uncommitted message
			f.claimNone(ob, "the message is not committed yet")
		} else {
			f.clock.Advance(late) // one writer at a time: only the clock moves on
		}
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, ids, claimedIDs(f.claim(ob, 10)), "the message of a late commit is claimable at once")
}
