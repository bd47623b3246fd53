package conformance

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

// outboxAdminTests cover the OutboxAdmin interface.
func outboxAdminTests() []testCase {
	return []testCase{
		{"StatsCountMessagesByState", testStats},
		{"StatsPendingAndTotalSayWhetherTheOutboxIsEmpty", testStatsPendingTotal},
		{"ListFiltersInIDOrder", testListFilters},
		{"ListPaginatesWithAfterIDAndLimit", testListPagination},
		{"ListLimitDefaultsTo100", testListDefaultLimit},
		{"RequeueRevivesDeadLetters", testRequeue},
		{"PurgeDeletesDeadLettersUpdatedBeforeTime", testPurge},
		{"DeleteDeadLettersDeletesOnlyTheNamedDeadLetters", testDeleteDeadLetters},
	}
}

func testDeleteDeadLetters(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	del, ok := ob.(ports.DeadLetterDeleter)
	require.True(t, ok, "the driver's outbox implements ports.DeadLetterDeleter")
	ids := f.enqueue(ob, job("conf.del"), job("conf.del"), job("conf.del"), job("conf.del.pending"))
	for range 3 {
		require.NoError(t, ob.DeadLetter(f.ctx, f.claimOne(ob, "conf.del").Claim(), "conformance: dead"))
	}
	n, err := del.DeleteDeadLetters(f.ctx, ids[0], ids[1], ids[3], "no-such-message")
	require.NoError(t, err)
	require.EqualValues(t, 2, n, "the two named dead letters; the pending one and the unknown ID are skipped")
	require.ElementsMatch(t, []string{ids[2], ids[3]}, recordIDs(f.listAll(ob)))
	_, err = del.DeleteDeadLetters(f.ctx)
	require.ErrorIs(t, err, ports.ErrInvalidArgument, "no IDs: use Purge to delete all")
	_, err = del.DeleteDeadLetters(f.ctx, "")
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
}

func testStats(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	require.Equal(t, ports.OutboxStats{}, f.stats(ob), "an empty outbox has zero stats")

	now := f.clock.Now()
	older := job("conf.ready")
	older.AvailableAt = now.Add(-10 * time.Second)
	scheduled := job("conf.scheduled")
	scheduled.AvailableAt = now.Add(time.Hour)
	retry := job("conf.retry")
	retry.MaxAttempts = 3
	f.enqueue(ob, job("conf.ready"), older, scheduled, job("conf.leased"), job("conf.dead"), retry)
	f.claimOne(ob, "conf.leased")
	require.NoError(t, ob.DeadLetter(f.ctx, f.claimOne(ob, "conf.dead").Claim(), "conformance: dead"))
	require.NoError(t, ob.Retry(f.ctx, f.claimOne(ob, "conf.retry").Claim(), ports.RetryOptions{At: now.Add(10 * time.Minute)}))

	st := f.stats(ob)
	require.EqualValues(t, 2, st.Ready, "two messages can be claimed now")
	require.EqualValues(t, 2, st.Scheduled, "one scheduled first try and one scheduled retry")
	require.EqualValues(t, 1, st.Leased)
	require.EqualValues(t, 1, st.Dead)
	requireTime(t, older.AvailableAt, st.OldestReady, "OldestReady is the AvailableAt of the oldest ready message")

	require.Len(t, f.claim(ob, 10, "conf.ready"), 2)
	st = f.stats(ob)
	require.Zero(t, st.Ready)
	require.True(t, st.OldestReady.IsZero(), "OldestReady is zero when nothing is ready")
	require.EqualValues(t, 3, st.Leased)

	f.clock.Advance(time.Hour)
	st = f.stats(ob)
	require.Zero(t, st.Scheduled, "scheduled messages become ready when their time comes")
	require.EqualValues(t, 1, st.Dead)
}

// testStatsPendingTotal: Pending counts what is still to be delivered
// (ready, scheduled and leased), Total adds the dead letters, and both are
// zero exactly when nothing of that kind is left.
func testStatsPendingTotal(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	requireCounts := func(pending, total int64, when string) {
		t.Helper()
		st := f.stats(ob)
		require.Equal(t, pending, st.Pending(), "Pending %s (stats %+v)", when, st)
		require.Equal(t, total, st.Total(), "Total %s (stats %+v)", when, st)
	}
	requireCounts(0, 0, "of an empty outbox")

	scheduled := job("conf.scheduled")
	scheduled.AvailableAt = f.clock.Now().Add(time.Hour)
	f.enqueue(ob, job("conf.ready"), job("conf.ready"), scheduled, job("conf.leased"), job("conf.dead"))
	leased := f.claimOne(ob, "conf.leased")
	require.NoError(t, ob.DeadLetter(f.ctx, f.claimOne(ob, "conf.dead").Claim(), "conformance: dead"))
	st := f.stats(ob)
	require.Equal(t, ports.OutboxStats{Ready: 2, Scheduled: 1, Leased: 1, Dead: 1, OldestReady: st.OldestReady}, st)
	requireCounts(4, 5, "with two ready, one scheduled, one leased and one dead")

	require.NoError(t, ob.Complete(f.ctx, leased.Claim()))
	requireCounts(3, 4, "after completing the leased message")
	require.NoError(t, ob.Complete(f.ctx, claimsOf(f.claim(ob, 10, "conf.ready"))...))
	requireCounts(1, 2, "after completing the ready messages")
	f.clock.Advance(time.Hour)
	require.NoError(t, ob.Complete(f.ctx, f.claimOne(ob, "conf.scheduled").Claim()))
	requireCounts(0, 1, "with only a dead letter left: no work, but not empty")

	n, err := ob.Purge(f.ctx, f.clock.Now().Add(time.Second))
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	requireCounts(0, 0, "after purging the dead letter")
	require.Empty(t, f.listAll(ob))
}

// claimsOf returns the claims of msgs.
func claimsOf(msgs []ports.ClaimedMessage) []ports.Claim {
	claims := make([]ports.Claim, len(msgs))
	for i, m := range msgs {
		claims[i] = m.Claim()
	}
	return claims
}

// listFixture stores five messages with IDs m01..m05 (enqueued out of
// order); m05 is dead.
func listFixture(f *fixture, ob wharf.Outbox) {
	f.t.Helper()
	f.enqueue(ob,
		withID("m03", keyed("conf.t1", "k1")),
		withID("m01", keyed("conf.t2", "k2")),
		withID("m05", job("conf.t3")),
		withID("m02", keyed("conf.t2", "k1")),
		withID("m04", job("conf.t1")),
	)
	require.NoError(f.t, ob.DeadLetter(f.ctx, f.claimOne(ob, "conf.t3").Claim(), "conformance: dead"))
}

func testListFilters(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	listFixture(f, ob)

	cases := []struct {
		name   string
		filter ports.OutboxFilter
		want   []string
	}{
		{"All", ports.OutboxFilter{}, []string{"m01", "m02", "m03", "m04", "m05"}},
		{"Dead", ports.OutboxFilter{Status: ports.StatusDead}, []string{"m05"}},
		{"Pending", ports.OutboxFilter{Status: ports.StatusPending}, []string{"m01", "m02", "m03", "m04"}},
		{"Topic", ports.OutboxFilter{Topic: "conf.t1"}, []string{"m03", "m04"}},
		{"Key", ports.OutboxFilter{Key: "k1"}, []string{"m02", "m03"}},
		{"TopicAndKey", ports.OutboxFilter{Topic: "conf.t2", Key: "k1"}, []string{"m02"}},
		{"PendingTopicAfterID", ports.OutboxFilter{Status: ports.StatusPending, Topic: "conf.t1", AfterID: "m03"}, []string{"m04"}},
		{"NoMatch", ports.OutboxFilter{Topic: "conf.none"}, []string{}},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, recordIDs(f.list(ob, tc.filter)), "List %s", tc.name)
	}

	dead := f.record(ob, "m05")
	require.Equal(t, ports.StatusDead, dead.Status)
	require.Equal(t, "conformance: dead", dead.LastError)
	require.Equal(t, 1, dead.Attempts)
	require.Equal(t, "conf.t3", dead.Topic)
	m01 := f.record(ob, "m01")
	require.Equal(t, "conf.t2", m01.Topic)
	require.Equal(t, "k2", m01.Key)
	require.Equal(t, ports.KindJob, m01.Kind)
	require.JSONEq(t, `{"n":1}`, string(m01.Payload))
}

func testListPagination(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	listFixture(f, ob)
	var pages [][]string
	after := ""
	for range 5 {
		page := recordIDs(f.list(ob, ports.OutboxFilter{AfterID: after, Limit: 2}))
		pages = append(pages, page)
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1]
	}
	require.Equal(t, [][]string{{"m01", "m02"}, {"m03", "m04"}, {"m05"}, {}}, pages, "keyset pagination walks every message once")
	require.Equal(t, []string{"m03", "m04", "m05"}, recordIDs(f.list(ob, ports.OutboxFilter{AfterID: "m02"})))
}

func testListDefaultLimit(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	msgs := make([]ports.OutboxMessage, 150)
	for i := range msgs {
		msgs[i] = withID(fmt.Sprintf("l-%03d", i), job("conf.many"))
	}
	// Enqueue in reverse so that insertion order is not ID order.
	slices.Reverse(msgs)
	f.enqueue(ob, msgs...)
	want := make([]string, 150)
	for i := range want {
		want[i] = fmt.Sprintf("l-%03d", i)
	}
	sort.Strings(want)

	first := recordIDs(f.list(ob, ports.OutboxFilter{}))
	require.Equal(t, want[:100], first, "a zero Limit lists 100 messages, in ID order")
	rest := recordIDs(f.list(ob, ports.OutboxFilter{AfterID: first[99], Limit: 1000}))
	require.Equal(t, want[100:], rest)
}

func testRequeue(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	now := f.clock.Now()
	exhausted := withID("rq-1", job("conf.rq1"))
	exhausted.MaxAttempts = 1
	poisoned := withID("rq-2", job("conf.rq2"))
	poisoned.MaxAttempts = 3
	f.enqueue(ob, exhausted, poisoned, withID("rq-3", job("conf.rq3")))
	// rq-1 exhausts its only attempt with a retry scheduled an hour ahead.
	require.NoError(t, ob.Retry(f.ctx, f.claimOne(ob, "conf.rq1").Claim(),
		ports.RetryOptions{At: now.Add(time.Hour), LastError: "conformance: exhausted"}))
	require.NoError(t, ob.DeadLetter(f.ctx, f.claimOne(ob, "conf.rq2").Claim(), "conformance: poisoned"))
	require.Equal(t, []string{"rq-1", "rq-2"}, recordIDs(f.list(ob, ports.OutboxFilter{Status: ports.StatusDead})))

	n, err := ob.Requeue(f.ctx, "rq-1")
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	r := f.record(ob, "rq-1")
	require.Equal(t, ports.StatusPending, r.Status)
	require.Zero(t, r.Attempts, "Requeue resets attempts")
	require.Equal(t, "conformance: exhausted", r.LastError, "Requeue keeps the last error")
	require.False(t, r.AvailableAt.After(now), "a requeued message is claimable now")
	c := f.claimOne(ob, "conf.rq1")
	require.Equal(t, "rq-1", c.ID)
	require.Equal(t, 1, c.Attempts)
	require.Equal(t, "conformance: exhausted", c.LastError)

	n, err = ob.Requeue(f.ctx, "rq-3", "conformance-unknown")
	require.NoError(t, err)
	require.Zero(t, n, "Requeue ignores messages that are not dead")
	require.Equal(t, ports.StatusPending, f.record(ob, "rq-3").Status)

	n, err = ob.Requeue(f.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "Requeue without IDs requeues every dead letter")
	require.Equal(t, "rq-2", f.claimOne(ob, "conf.rq2").ID)
	n, err = ob.Requeue(f.ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	require.Zero(t, f.stats(ob).Dead)
}

func testPurge(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	t0 := f.clock.Now()
	f.enqueue(ob, withID("pg-a", job("conf.pa")), withID("pg-b", job("conf.pb")), withID("pg-p", job("conf.pp")))
	require.NoError(t, ob.DeadLetter(f.ctx, f.claimOne(ob, "conf.pa").Claim(), "a"))
	c := f.claimOne(ob, "conf.pb")
	f.clock.Advance(time.Hour)
	require.NoError(t, ob.DeadLetter(f.ctx, c.Claim(), "b"))

	n, err := ob.Purge(f.ctx, t0.Add(30*time.Minute))
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "pg-a was dead-lettered before the cut-off")
	require.Equal(t, []string{"pg-b", "pg-p"}, recordIDs(f.listAll(ob)), "pending messages and newer dead letters stay")

	n, err = ob.Purge(f.ctx, t0.Add(time.Hour))
	require.NoError(t, err)
	require.Zero(t, n, "pg-b was updated at the cut-off, not before it")

	n, err = ob.Purge(f.ctx, t0.Add(2*time.Hour))
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	require.Equal(t, []string{"pg-p"}, recordIDs(f.listAll(ob)))
	st := f.stats(ob)
	require.Zero(t, st.Dead)
	require.EqualValues(t, 1, st.Ready, "Purge never deletes pending messages")
}
