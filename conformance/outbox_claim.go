package conformance

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

// outboxClaimTests cover Claim and the life cycle of a claimed message.
func outboxClaimTests() []testCase {
	return []testCase{
		{"ClaimOrdersByAvailableAtThenID", testClaimOrder},
		{"ClaimSetsLeaseTokenAndAttempts", testClaimLease},
		{"ClaimRespectsLimit", testClaimLimit},
		{"ClaimFiltersByTopics", testClaimTopics},
		{"ClaimRejectsInvalidOptions", testClaimInvalid},
		{"LeasedMessageIsNotClaimedUntilLeaseExpires", testClaimLeased},
		{"FutureMessageIsClaimableOnceClockReachesAvailableAt", testClaimFuture},
		{"CompleteDeletesMessages", testComplete},
		{"CompleteTwiceIsClaimLost", testCompleteTwice},
		{"SameClaimTwiceInOneCallIsAppliedOnce", testSameClaimTwiceInOneCall},
		{"BatchCompleteCompletesLiveClaimsAndReportsLostOnes", testCompleteBatchLost},
		{"StaleClaimIsRejected", testStaleClaims},
		{"RetrySchedulesNextAttempt", testRetry},
		{"RetryWithoutTimeIsImmediate", testRetryNow},
		{"RetryOnFinalAttemptDeadLetters", testRetryFinal},
		{"DeadLetterStopsDelivery", testDeadLetter},
		{"ExtendRenewsLease", testExtend},
		{"ExtendRejectsNonPositiveLease", testExtendInvalid},
		{"ReleaseRefundsAttemptAndKeepsPlace", testRelease},
		{"ExpiredLeaseOnFinalAttemptIsDeadLettered", testExpiredFinal},
		{"DeadLetteringExpiredFinalAttemptsDoesNotHideReadyWork", testExpiredFinalKeepsLimit},
		{"SameKeyMessagesAreHandedOutOneAtATime", testKeyOneAtATime},
		{"LaterKeyedMessageWaitsForEarlierRetry", testKeyWaitsForRetry},
		{"LaterKeyedMessageWaitsForEarlierScheduled", testKeyWaitsForScheduled},
		{"ReleasedKeyedMessageKeepsItsTurn", testKeyRelease},
		{"DeadEarlierKeyedMessageDoesNotBlock", testKeyDead},
		{"KeyOrderingSpansTopics", testKeyAcrossTopics},
		{"CallsOnACancelledContextNameTheOperationAndChangeNothing", testCancelledCalls},
	}
}

// withID returns m with an explicit ID.
func withID(id string, m ports.OutboxMessage) ports.OutboxMessage {
	m.ID = id
	return m
}

func testClaimOrder(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	now := f.clock.Now()
	at := func(id string, d time.Duration) ports.OutboxMessage {
		m := withID(id, job("conf.order"))
		if d > 0 {
			m.AvailableAt = now.Add(d)
		}
		return m
	}
	f.enqueue(ob, at("o-1", 3*time.Second), at("o-2", time.Second), at("o-3", 0), at("o-4", time.Second), at("o-0", time.Second))
	f.clock.Advance(5 * time.Second)

	first := claimedIDs(f.claim(ob, 2))
	require.ElementsMatch(t, []string{"o-3", "o-0"}, first, "Claim selects the first two by AvailableAt then ID")
	require.Equal(t, []string{"o-3", "o-0"}, first, "Claim returns them ordered by AvailableAt then ID")
	rest := claimedIDs(f.claim(ob, 10))
	require.ElementsMatch(t, []string{"o-2", "o-4", "o-1"}, rest, "Claim selects the rest")
	require.Equal(t, []string{"o-2", "o-4", "o-1"}, rest, "Claim returns them ordered by AvailableAt then ID")
}

func testClaimLease(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	m := withID("lease-1", job("conf.lease"))
	m.MaxAttempts = 5
	f.enqueue(ob, m)

	now := f.clock.Now()
	c := f.claimOne(ob)
	require.Equal(t, "lease-1", c.ID)
	require.Equal(t, 1, c.Attempts, "the first claim is attempt 1")
	require.Equal(t, 5, c.MaxAttempts)
	require.NotEmpty(t, c.Token, "a claim has a token")
	require.Empty(t, c.LastError)
	requireTime(t, now.Add(testLease), c.LockedUntil, "LockedUntil = now + lease")
	require.Equal(t, ports.Claim{ID: c.ID, Token: c.Token}, c.Claim())

	r := f.record(ob, "lease-1")
	require.Equal(t, ports.StatusPending, r.Status)
	require.Equal(t, 1, r.Attempts)
	requireTime(t, c.LockedUntil, r.LockedUntil)
	st := f.stats(ob)
	require.EqualValues(t, 1, st.Leased)
	require.Zero(t, st.Ready)

	f.clock.Advance(testLease + time.Second)
	now = f.clock.Now()
	msgs, err := ob.Claim(f.ctx, ports.ClaimOptions{Limit: 1, Lease: 3 * time.Minute})
	require.NoError(t, err)
	require.Len(t, msgs, 1, "an expired lease can be claimed again")
	c2 := msgs[0]
	require.Equal(t, "lease-1", c2.ID)
	require.Equal(t, 2, c2.Attempts, "every claim counts an attempt")
	require.NotEqual(t, c.Token, c2.Token, "every claim gets a new token")
	requireTime(t, now.Add(3*time.Minute), c2.LockedUntil, "LockedUntil = now + opts.Lease")
}

func testClaimLimit(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	ids := f.enqueue(ob, job("conf.limit"), job("conf.limit"), job("conf.limit"), job("conf.limit"), job("conf.limit"))
	require.Equal(t, ids[0:2], claimedIDs(f.claim(ob, 2)))
	require.Equal(t, ids[2:4], claimedIDs(f.claim(ob, 2)))
	require.Equal(t, ids[4:5], claimedIDs(f.claim(ob, 2)))
	require.Empty(t, f.claim(ob, 2))
}

func testClaimTopics(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	ids := f.enqueue(ob, job("conf.a"), job("conf.b"), job("conf.c"), job("conf.a"))
	require.Equal(t, []string{ids[0], ids[2], ids[3]}, claimedIDs(f.claim(ob, 10, "conf.a", "conf.c")))
	require.Empty(t, f.claim(ob, 10, "conf.none"))
	require.Equal(t, []string{ids[1]}, claimedIDs(f.claim(ob, 10, "conf.b")))
}

func testClaimInvalid(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	f.enqueue(ob, job("conf.invalid"))
	for _, opts := range []ports.ClaimOptions{
		{Limit: 0, Lease: time.Minute},
		{Limit: -1, Lease: time.Minute},
		{Limit: 1, Lease: 0},
		{Limit: 1, Lease: -time.Second},
	} {
		msgs, err := ob.Claim(f.ctx, opts)
		require.ErrorIs(t, err, ports.ErrInvalidArgument, "Claim with Limit %d Lease %v", opts.Limit, opts.Lease)
		require.Empty(t, msgs)
	}
	c := f.claimOne(ob)
	require.Equal(t, 1, c.Attempts, "invalid claims took no attempt")
}

func testClaimLeased(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	m := job("conf.leased")
	m.MaxAttempts = 3
	f.enqueue(ob, m)
	c := f.claimOne(ob)
	f.claimNone(ob, "the only message is leased")
	f.clock.Advance(testLease - time.Second)
	f.claimNone(ob, "the lease has one second left")
	f.clock.Advance(2 * time.Second)
	c2 := f.claimOne(ob)
	require.Equal(t, c.ID, c2.ID)
	require.Equal(t, 2, c2.Attempts)
	require.NotEqual(t, c.Token, c2.Token)
}

func testClaimFuture(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	future := job("conf.future")
	future.AvailableAt = f.clock.Now().Add(10 * time.Second)
	ids := f.enqueue(ob, future, job("conf.now"))

	st := f.stats(ob)
	require.EqualValues(t, 1, st.Scheduled)
	require.EqualValues(t, 1, st.Ready)
	require.Equal(t, []string{ids[1]}, claimedIDs(f.claim(ob, 10)), "only the message available now")
	f.clock.Advance(9 * time.Second)
	f.claimNone(ob, "AvailableAt is one second away")
	f.clock.Advance(time.Second)
	c := f.claimOne(ob)
	require.Equal(t, ids[0], c.ID, "a message is claimable when AvailableAt <= now")
	require.Equal(t, 1, c.Attempts)
}

func testComplete(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	f.enqueue(ob, job("conf.done"), job("conf.done"), job("conf.done"))
	msgs := f.claim(ob, 10)
	require.Len(t, msgs, 3)
	require.NoError(t, ob.Complete(f.ctx, msgs[0].Claim()))
	require.Len(t, f.listAll(ob), 2, "a completed message leaves the outbox")
	require.NoError(t, ob.Complete(f.ctx, msgs[1].Claim(), msgs[2].Claim()), "batch Complete")
	require.Empty(t, f.listAll(ob), "completed messages leave the outbox")
	require.Equal(t, ports.OutboxStats{}, f.stats(ob))
	f.clock.Advance(24 * time.Hour)
	f.claimNone(ob, "completed messages are never handed out again")
	require.NoError(t, ob.Complete(f.ctx), "Complete of no claims does nothing")
}

func testCompleteTwice(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	f.enqueue(ob, job("conf.twice"))
	c := f.claimOne(ob)
	require.NoError(t, ob.Complete(f.ctx, c.Claim()))
	requireClaimLost(t, ob.Complete(f.ctx, c.Claim()), "complete", c.ID)
}

func testSameClaimTwiceInOneCall(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	f.enqueue(ob, job("conf.dup"), job("conf.dup"), job("conf.dup"))
	ms := f.claim(ob, 3)
	require.Len(t, ms, 3)
	require.NoError(t, ob.Release(f.ctx, ms[2].Claim(), ms[2].Claim()), "a repeated claim is released once, not reported lost")
	require.NoError(t, ob.Complete(f.ctx, ms[0].Claim(), ms[1].Claim(), ms[0].Claim()), "a repeated claim is completed once, not reported lost")
	left := f.listAll(ob)
	require.Len(t, left, 1, "the two completed messages left the outbox")
	require.Equal(t, ms[2].ID, left[0].ID)
	require.Equal(t, 0, left[0].Attempts, "the released message got its attempt back once")
}

func testCompleteBatchLost(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	b1 := withID("b-1", job("conf.batch"))
	b1.MaxAttempts = 3
	f.enqueue(ob, b1, withID("b-2", job("conf.batch")), withID("b-3", job("conf.batch")))

	short, err := ob.Claim(f.ctx, ports.ClaimOptions{Limit: 1, Lease: time.Minute})
	require.NoError(t, err)
	require.Equal(t, []string{"b-1"}, claimedIDs(short))
	long, err := ob.Claim(f.ctx, ports.ClaimOptions{Limit: 2, Lease: 10 * time.Minute})
	require.NoError(t, err)
	require.Equal(t, []string{"b-2", "b-3"}, claimedIDs(long))
	require.NoError(t, ob.Complete(f.ctx, long[0].Claim()), "b-2 is completed once")

	f.clock.Advance(2 * time.Minute)
	re := f.claim(ob, 10)
	require.Equal(t, []string{"b-1"}, claimedIDs(re), "b-1's lease expired and it is reclaimed; b-3 is still leased")

	err = ob.Complete(f.ctx, short[0].Claim(), long[0].Claim(), long[1].Claim())
	requireClaimLost(t, err, "complete", "b-1", "b-2")
	require.Equal(t, []string{"b-1"}, recordIDs(f.listAll(ob)), "the live claim (b-3) was completed; the reclaimed b-1 remains")
	r := f.record(ob, "b-1")
	require.Equal(t, 2, r.Attempts)
	requireTime(t, re[0].LockedUntil, r.LockedUntil, "the lost claim did not touch the new lease")
	require.NoError(t, ob.Complete(f.ctx, re[0].Claim()))
	require.Empty(t, f.listAll(ob))
}

// claimOp is one fenced change to a claimed message.
type claimOp struct {
	name  string
	op    string // ClaimLostError.Op, checked for the batch operations
	batch bool
	do    func(f *fixture, ob wharf.Outbox, c ports.Claim) error
}

var claimOps = []claimOp{
	{"Complete", "complete", true, func(f *fixture, ob wharf.Outbox, c ports.Claim) error { return ob.Complete(f.ctx, c) }},
	{"Retry", "retry", false, func(f *fixture, ob wharf.Outbox, c ports.Claim) error {
		return ob.Retry(f.ctx, c, ports.RetryOptions{LastError: "conformance: stale retry"})
	}},
	{"DeadLetter", "dead-letter", false, func(f *fixture, ob wharf.Outbox, c ports.Claim) error {
		return ob.DeadLetter(f.ctx, c, "conformance: stale dead-letter")
	}},
	{"Extend", "extend", false, func(f *fixture, ob wharf.Outbox, c ports.Claim) error {
		_, err := ob.Extend(f.ctx, c, time.Hour)
		return err
	}},
	{"Release", "release", true, func(f *fixture, ob wharf.Outbox, c ports.Claim) error { return ob.Release(f.ctx, c) }},
}

func requireOpLost(t *testing.T, op claimOp, err error, id string) {
	t.Helper()
	if op.batch {
		requireClaimLost(t, err, op.op, id)
		return
	}
	require.ErrorIs(t, err, ports.ErrClaimLost, "%s with a lost claim", op.name)
}

func testStaleClaims(t *testing.T, h Harness) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, f *fixture, ob wharf.Outbox, op claimOp)
	}{
		{"AfterLeaseExpiredAndReclaimed", func(t *testing.T, f *fixture, ob wharf.Outbox, op claimOp) {
			old := f.claimOne(ob)
			f.clock.Advance(testLease + time.Second)
			cur := f.claimOne(ob)
			require.Equal(t, old.ID, cur.ID)
			requireOpLost(t, op, op.do(f, ob, old.Claim()), old.ID)
			r := f.record(ob, cur.ID)
			require.Equal(t, ports.StatusPending, r.Status, "the stale change did nothing")
			require.Equal(t, 2, r.Attempts, "the stale change did nothing")
			require.Empty(t, r.LastError, "the stale change did nothing")
			requireTime(t, cur.LockedUntil, r.LockedUntil, "the stale change did nothing")
			f.claimNone(ob, "the current claim still holds the message")
			require.NoError(t, ob.Complete(f.ctx, cur.Claim()), "the current claim still holds the message")
			require.Empty(t, f.listAll(ob))
		}},
		{"AfterComplete", func(t *testing.T, f *fixture, ob wharf.Outbox, op claimOp) {
			c := f.claimOne(ob)
			require.NoError(t, ob.Complete(f.ctx, c.Claim()))
			requireOpLost(t, op, op.do(f, ob, c.Claim()), c.ID)
			require.Empty(t, f.listAll(ob), "a completed message stays gone")
			f.claimNone(ob, "a completed message stays gone")
		}},
		{"WithFabricatedToken", func(t *testing.T, f *fixture, ob wharf.Outbox, op claimOp) {
			cur := f.claimOne(ob)
			requireOpLost(t, op, op.do(f, ob, ports.Claim{ID: cur.ID, Token: "conformance-fabricated"}), cur.ID)
			requireOpLost(t, op, op.do(f, ob, ports.Claim{ID: "conformance-unknown", Token: cur.Token}), "conformance-unknown")
			r := f.record(ob, cur.ID)
			require.Equal(t, ports.StatusPending, r.Status)
			require.Equal(t, 1, r.Attempts)
			requireTime(t, cur.LockedUntil, r.LockedUntil)
			require.NoError(t, ob.Complete(f.ctx, cur.Claim()))
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			for _, op := range claimOps {
				t.Run(op.name, func(t *testing.T) {
					t.Parallel()
					f := setup(t, h)
					ob := f.outbox(f.db)
					m := job("conf.stale")
					m.MaxAttempts = 5
					f.enqueue(ob, m)
					sc.run(t, f, ob, op)
				})
			}
		})
	}
}

func testRetry(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	m := job("conf.retry")
	m.MaxAttempts = 3
	ids := f.enqueue(ob, m)
	c := f.claimOne(ob)
	at := f.clock.Now().Add(30 * time.Second)
	require.NoError(t, ob.Retry(f.ctx, c.Claim(), ports.RetryOptions{At: at, LastError: "conformance: try later"}))

	r := f.record(ob, ids[0])
	require.Equal(t, ports.StatusPending, r.Status)
	require.Equal(t, 1, r.Attempts)
	require.Equal(t, "conformance: try later", r.LastError)
	requireTime(t, at, r.AvailableAt, "Retry moves AvailableAt to opts.At")
	require.True(t, r.LockedUntil.IsZero(), "a message waiting for a retry is not leased")
	st := f.stats(ob)
	require.EqualValues(t, 1, st.Scheduled)
	require.Zero(t, st.Leased)

	f.claimNone(ob, "the retry is scheduled")
	f.clock.Advance(29 * time.Second)
	f.claimNone(ob, "the retry is one second away")
	f.clock.Advance(time.Second)
	c2 := f.claimOne(ob)
	require.Equal(t, ids[0], c2.ID)
	require.Equal(t, 2, c2.Attempts)
	require.Equal(t, "conformance: try later", c2.LastError, "the next attempt sees the last error")
	require.NotEqual(t, c.Token, c2.Token)
	requireClaimLost(t, ob.Complete(f.ctx, c.Claim()), "complete", c.ID)
	require.NoError(t, ob.Complete(f.ctx, c2.Claim()))
}

func testRetryNow(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	m := job("conf.retry-now")
	m.MaxAttempts = 3
	f.enqueue(ob, m)
	c := f.claimOne(ob)
	require.NoError(t, ob.Retry(f.ctx, c.Claim(), ports.RetryOptions{LastError: "again"}))
	c2 := f.claimOne(ob)
	require.Equal(t, c.ID, c2.ID, "a zero At means claimable now")
	require.Equal(t, 2, c2.Attempts)
	require.Equal(t, "again", c2.LastError)
}

func testRetryFinal(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	m := job("conf.retry-final")
	m.MaxAttempts = 2
	ids := f.enqueue(ob, m)
	c := f.claimOne(ob)
	require.NoError(t, ob.Retry(f.ctx, c.Claim(), ports.RetryOptions{LastError: "first"}))
	c = f.claimOne(ob)
	require.Equal(t, 2, c.Attempts)
	require.NoError(t, ob.Retry(f.ctx, c.Claim(), ports.RetryOptions{LastError: "final"}))

	r := f.record(ob, ids[0])
	require.Equal(t, ports.StatusDead, r.Status, "a retry after the final attempt dead-letters")
	require.Equal(t, "final", r.LastError)
	require.Equal(t, 2, r.Attempts)
	st := f.stats(ob)
	require.EqualValues(t, 1, st.Dead)
	require.Zero(t, st.Ready+st.Scheduled+st.Leased)
	f.clock.Advance(24 * time.Hour)
	f.claimNone(ob, "a dead letter is never handed out")
}

func testDeadLetter(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	m := job("conf.dead")
	m.MaxAttempts = 5
	ids := f.enqueue(ob, m, job("conf.alive"))
	c := f.claimOne(ob, "conf.dead")
	require.NoError(t, ob.DeadLetter(f.ctx, c.Claim(), "conformance: poison"))

	r := f.record(ob, ids[0])
	require.Equal(t, ports.StatusDead, r.Status)
	require.Equal(t, "conformance: poison", r.LastError)
	require.True(t, r.LockedUntil.IsZero(), "a dead letter is not leased")
	require.EqualValues(t, 1, f.stats(ob).Dead)
	alive := f.claim(ob, 10)
	require.Equal(t, []string{ids[1]}, claimedIDs(alive), "only the live message is handed out")
	require.NoError(t, ob.Complete(f.ctx, alive[0].Claim()))
	f.clock.Advance(24 * time.Hour)
	f.claimNone(ob, "a dead letter is never handed out")
	requireClaimLost(t, ob.Complete(f.ctx, c.Claim()), "complete", c.ID)
	require.Equal(t, ports.StatusDead, f.record(ob, ids[0]).Status)
}

func testExtend(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	m := job("conf.extend")
	m.MaxAttempts = 3
	ids := f.enqueue(ob, m, job("conf.extend-complete"))
	c := f.claimOne(ob, "conf.extend")
	other := f.claimOne(ob, "conf.extend-complete")

	f.clock.Advance(50 * time.Second)
	until, err := ob.Extend(f.ctx, c.Claim(), 2*time.Minute)
	require.NoError(t, err)
	requireTime(t, f.clock.Now().Add(2*time.Minute), until, "Extend returns now + lease")
	requireTime(t, until, f.record(ob, ids[0]).LockedUntil)
	_, err = ob.Extend(f.ctx, other.Claim(), time.Hour)
	require.NoError(t, err)
	require.NoError(t, ob.Complete(f.ctx, other.Claim()), "the token still holds after Extend")

	f.clock.Advance(30 * time.Second)
	f.claimNone(ob, "the original lease ended but the extended one holds")
	f.clock.Advance(time.Minute + 31*time.Second)
	c2 := f.claimOne(ob)
	require.Equal(t, c.ID, c2.ID, "claimable once the extended lease expired")
	require.Equal(t, 2, c2.Attempts)
}

func testExtendInvalid(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	ids := f.enqueue(ob, job("conf.extend"))
	c := f.claimOne(ob)
	for _, lease := range []time.Duration{0, -time.Second} {
		_, err := ob.Extend(f.ctx, c.Claim(), lease)
		require.ErrorIs(t, err, ports.ErrInvalidArgument, "Extend with lease %v", lease)
	}
	requireTime(t, c.LockedUntil, f.record(ob, ids[0]).LockedUntil, "the lease is unchanged")
	require.NoError(t, ob.Complete(f.ctx, c.Claim()))
}

func testRelease(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	one := func(id string) ports.OutboxMessage {
		m := withID(id, job("conf.release"))
		m.MaxAttempts = 1
		return m
	}
	f.enqueue(ob, one("r-1"), one("r-2"))
	a := f.claimOne(ob)
	require.Equal(t, "r-1", a.ID)
	require.NoError(t, ob.Release(f.ctx, a.Claim()))

	r := f.record(ob, "r-1")
	require.Equal(t, ports.StatusPending, r.Status)
	require.Zero(t, r.Attempts, "the released attempt is refunded")
	require.True(t, r.LockedUntil.IsZero(), "a released message is not leased")
	requireTime(t, clockStart, r.AvailableAt, "a released message keeps its place")

	a2 := f.claimOne(ob)
	require.Equal(t, "r-1", a2.ID, "a released message is claimable at once, in its original place")
	require.Equal(t, 1, a2.Attempts, "the refunded attempt is available again")
	require.NotEqual(t, a.Token, a2.Token)

	b := f.claimOne(ob)
	require.Equal(t, "r-2", b.ID)
	require.NoError(t, ob.Release(f.ctx, a2.Claim(), b.Claim()), "batch Release")
	again := f.claim(ob, 10)
	require.Equal(t, []string{"r-1", "r-2"}, claimedIDs(again))
	require.Equal(t, 1, again[0].Attempts)
	require.Equal(t, 1, again[1].Attempts)
	require.Zero(t, f.stats(ob).Dead, "releasing does not spend attempts")
}

func testExpiredFinal(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	one := func(id string) ports.OutboxMessage {
		m := withID(id, job("conf.final"))
		m.MaxAttempts = 1
		return m
	}
	f.enqueue(ob, one("x-1"), one("x-2"))
	c := f.claimOne(ob)
	require.Equal(t, "x-1", c.ID)
	f.clock.Advance(testLease + time.Second)

	require.Equal(t, []string{"x-2"}, claimedIDs(f.claim(ob, 10)),
		"x-1's lease expired on its final attempt: it is dead-lettered, not handed out")
	r := f.record(ob, "x-1")
	require.Equal(t, ports.StatusDead, r.Status)
	require.Equal(t, 1, r.Attempts)
	requireClaimLost(t, ob.Complete(f.ctx, c.Claim()), "complete", c.ID)
	require.Equal(t, ports.StatusDead, f.record(ob, "x-1").Status, "a late Complete does not revive or delete it")
	f.clock.Advance(24 * time.Hour)
	f.claimNone(ob, "x-1 is dead, and x-2's lease expired on its final attempt too")
	require.EqualValues(t, 2, f.stats(ob).Dead)
}

func testExpiredFinalKeepsLimit(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	var msgs []ports.OutboxMessage
	for i := 0; i < 5; i++ {
		m := withID(fmt.Sprintf("e-%d", i), job("conf.final"))
		m.MaxAttempts = 1
		msgs = append(msgs, m)
	}
	f.enqueue(ob, msgs...)
	require.Len(t, f.claim(ob, 5), 5)
	f.clock.Advance(testLease + time.Second)
	f.enqueue(ob, withID("ready-1", job("conf.final")))

	got := f.claim(ob, 1)
	require.Equal(t, []string{"ready-1"}, claimedIDs(got),
		"the five expired final attempts are dead-lettered, and the claim still hands out the ready message")
	require.EqualValues(t, 5, f.stats(ob).Dead)
}

func testKeyOneAtATime(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	f.enqueue(ob,
		withID("f-1", keyed("conf.key", "K")),
		withID("f-2", keyed("conf.key", "K")),
		withID("f-3", keyed("conf.key", "L")),
		withID("f-4", job("conf.key")),
		withID("f-5", keyed("conf.key", "K")),
	)
	first := f.claim(ob, 10)
	require.Equal(t, []string{"f-1", "f-3", "f-4"}, claimedIDs(first),
		"one message per key, the earliest; other keys and unkeyed messages are unaffected")
	f.claimNone(ob, "f-2 and f-5 wait for f-1, which is leased")
	require.NoError(t, ob.Complete(f.ctx, first[0].Claim()))
	second := f.claim(ob, 10)
	require.Equal(t, []string{"f-2"}, claimedIDs(second))
	require.NoError(t, ob.Complete(f.ctx, second[0].Claim()))
	require.Equal(t, []string{"f-5"}, claimedIDs(f.claim(ob, 10)))
}

func testKeyWaitsForRetry(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	k1 := withID("k-1", keyed("conf.key", "K"))
	k1.MaxAttempts = 3
	f.enqueue(ob, k1, withID("k-2", keyed("conf.key", "K")))
	c := f.claimOne(ob)
	require.Equal(t, "k-1", c.ID)
	require.NoError(t, ob.Retry(f.ctx, c.Claim(), ports.RetryOptions{At: f.clock.Now().Add(time.Minute)}))
	f.claimNone(ob, "k-2 waits while k-1 waits for its retry")
	f.clock.Advance(time.Minute)
	again := f.claim(ob, 10)
	require.Equal(t, []string{"k-1"}, claimedIDs(again), "k-1 comes first, and alone")
	require.NoError(t, ob.Complete(f.ctx, again[0].Claim()))
	require.Equal(t, []string{"k-2"}, claimedIDs(f.claim(ob, 10)))
}

func testKeyWaitsForScheduled(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	k1 := withID("s-1", keyed("conf.key", "K"))
	k1.AvailableAt = f.clock.Now().Add(time.Minute)
	f.enqueue(ob, k1, withID("s-2", keyed("conf.key", "K")), withID("s-3", keyed("conf.key", "L")))
	other := f.claim(ob, 10)
	require.Equal(t, []string{"s-3"}, claimedIDs(other),
		"s-2 is available but waits for the earlier s-1, which is scheduled")
	require.NoError(t, ob.Complete(f.ctx, other[0].Claim()))
	f.clock.Advance(time.Minute)
	c := f.claim(ob, 10)
	require.Equal(t, []string{"s-1"}, claimedIDs(c))
	require.NoError(t, ob.Complete(f.ctx, c[0].Claim()))
	require.Equal(t, []string{"s-2"}, claimedIDs(f.claim(ob, 10)))
}

func testKeyRelease(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	f.enqueue(ob, withID("q-1", keyed("conf.key", "K")), withID("q-2", keyed("conf.key", "K")))
	c := f.claimOne(ob)
	require.Equal(t, "q-1", c.ID)
	require.NoError(t, ob.Release(f.ctx, c.Claim()))
	require.Equal(t, []string{"q-1"}, claimedIDs(f.claim(ob, 10)), "a released message keeps its turn")
}

func testKeyDead(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	f.enqueue(ob, withID("d-1", keyed("conf.key", "K")), withID("d-2", keyed("conf.key", "K")))
	c := f.claimOne(ob)
	require.Equal(t, "d-1", c.ID)
	require.NoError(t, ob.DeadLetter(f.ctx, c.Claim(), "conformance: poison"))
	require.Equal(t, []string{"d-2"}, claimedIDs(f.claim(ob, 10)), "a dead earlier message does not block its key")
}

func testKeyAcrossTopics(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	f.enqueue(ob, withID("t-1", keyed("conf.topic-a", "K")), withID("t-2", keyed("conf.topic-b", "K")))
	f.claimNone(ob, "t-2 waits for the earlier t-1 with the same key on another topic", "conf.topic-b")
	c := f.claimOne(ob, "conf.topic-a")
	require.Equal(t, "t-1", c.ID)
	require.NoError(t, ob.Complete(f.ctx, c.Claim()))
	require.Equal(t, "t-2", f.claimOne(ob, "conf.topic-b").ID)
}

// testCancelledCalls calls every outbox operation with a context that is
// already cancelled: each returns an error that wraps context.Canceled and
// names the operation (whether the driver failed at BEGIN, at the statement
// or at COMMIT), and the claimed message is left as it was.
func testCancelledCalls(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	ids := f.enqueue(ob, job("conf.cancel"), job("conf.cancel"))
	c := f.claimOne(ob)
	before := f.listAll(ob)

	ctx, cancel := context.WithCancel(f.ctx)
	cancel()
	calls := []struct {
		op   string
		call func() error
	}{
		{"enqueue", func() error { _, err := ob.Enqueue(ctx, job("conf.cancel")); return err }},
		{"claim", func() error {
			_, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 1, Lease: testLease})
			return err
		}},
		{"complete", func() error { return ob.Complete(ctx, c.Claim()) }},
		{"release", func() error { return ob.Release(ctx, c.Claim()) }},
		{"retry", func() error { return ob.Retry(ctx, c.Claim(), ports.RetryOptions{LastError: "x"}) }},
		{"dead-letter", func() error { return ob.DeadLetter(ctx, c.Claim(), "x") }},
		{"extend", func() error { _, err := ob.Extend(ctx, c.Claim(), time.Hour); return err }},
	}
	for _, tc := range calls {
		err := tc.call()
		require.ErrorIs(t, err, context.Canceled, "%s on a cancelled context", tc.op)
		require.Contains(t, err.Error(), "outbox "+tc.op, "the error names the operation")
	}

	require.Equal(t, before, f.listAll(ob), "nothing changed: the claimed message is still leased, the other still pending, nothing was enqueued")
	require.ElementsMatch(t, ids, recordIDs(before))
	require.NoError(t, ob.Complete(f.ctx, c.Claim()), "the claim is still held")
}
