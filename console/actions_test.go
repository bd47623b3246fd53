package console_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/console"
	"github.com/wharf-go/wharf/console/internal/consoletest"
	"github.com/wharf-go/wharf/ports"
)

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)

// confirmForm returns the fields a confirmation page submits.
func confirmForm(t *testing.T, page response) url.Values {
	t.Helper()
	require.Contains(t, page.body, `id="confirm"`, "a confirmation page")
	f := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(page.body, -1) {
		f.Add(m[1], htmlUnescape(m[2]))
	}
	require.Equal(t, "1", f.Get("confirm"))
	return f
}

// statusOf returns the stored status of id ("" once it left the outbox).
func statusOf(t *testing.T, drv *wharf.Driver, id string) ports.MessageStatus {
	t.Helper()
	recs, err := drv.Outbox().List(context.Background(), ports.OutboxFilter{ID: id})
	require.NoError(t, err)
	if len(recs) == 0 {
		return ""
	}
	return recs[0].Status
}

// deadLetter enqueues a message of topic and key and dead-letters it.
func deadLetter(t *testing.T, drv *wharf.Driver, topic, key string) string {
	t.Helper()
	ctx := context.Background()
	ob := drv.Outbox()
	ids, err := ob.Enqueue(ctx, ports.OutboxMessage{Topic: topic, Key: key, Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	// Other messages of topic may be claimable: release them again.
	claimed, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 100, Lease: time.Minute, Topics: []string{topic}})
	require.NoError(t, err)
	found := false
	for _, m := range claimed {
		if m.ID == ids[0] {
			found = true
			require.NoError(t, ob.DeadLetter(ctx, m.Claim(), "late failure"))
			continue
		}
		require.NoError(t, ob.Release(ctx, m.Claim()))
	}
	require.True(t, found, "the new message was claimed")
	return ids[0]
}

// TestActions requeues and purges dead letters (one, selected, all
// matching a filter) and expired idempotency records through the console,
// as its forms submit them, and checks the database after each.
func TestActions(t *testing.T) {
	t.Parallel()
	for _, dialect := range consoletest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db := consoletest.Open(t, dialect)
			drv := db.Driver
			seed := consoletest.Seed(t, db, 2, 6)
			s := newServer(t, console.Options{Outbox: drv.Outbox(), Idempotency: drv.Idempotency(), Now: db.Clock.Now})
			token := s.csrf(s.get("/dead", http.StatusOK))
			ctx := context.Background()

			t.Run("RequeueOneNeedsNoConfirmation", func(t *testing.T) {
				res := s.post("/dead/requeue", url.Values{"csrf": {token}, "only": {seed.Dead[0]}, "id": {seed.Dead[5]}, "back": {"/dead"}})
				require.Equal(t, http.StatusSeeOther, res.status, res.body)
				require.Equal(t, prefix+"/dead?done=requeued&n=1&of=1", res.location)
				require.Equal(t, ports.StatusPending, statusOf(t, drv, seed.Dead[0]))
				require.Equal(t, ports.StatusDead, statusOf(t, drv, seed.Dead[5]), "the row's button acts on its row only")
				recs, err := drv.Outbox().List(ctx, ports.OutboxFilter{ID: seed.Dead[0]})
				require.NoError(t, err)
				require.Zero(t, recs[0].Attempts, "attempts reset")
				page := s.get("/dead?done=requeued&n=1&of=1", http.StatusOK)
				require.Contains(t, page.body, "Requeued 1 dead letter(s).")
				require.NotContains(t, rows(page.body), seed.Dead[0])
			})

			t.Run("RequeueSelectedSaysWhatWasNoLongerDead", func(t *testing.T) {
				res := s.post("/dead/requeue", url.Values{"csrf": {token}, "id": {seed.Dead[1], seed.Dead[2], seed.Ready[0]}, "back": {"/dead?topic=x"}})
				require.Equal(t, http.StatusSeeOther, res.status, res.body)
				require.Equal(t, prefix+"/dead?topic=x&done=requeued&n=2&of=3", res.location)
				require.Equal(t, ports.StatusPending, statusOf(t, drv, seed.Dead[1]))
				require.Equal(t, ports.StatusPending, statusOf(t, drv, seed.Dead[2]))
				require.Contains(t, s.get("/dead?done=requeued&n=2&of=3", http.StatusOK).body, "(2 of 3: the others were no longer dead letters)")
				res = s.post("/dead/requeue", url.Values{"csrf": {token}})
				require.Equal(t, http.StatusBadRequest, res.status)
				require.Contains(t, res.body, "no dead letter selected")
			})

			t.Run("PurgeOneAsksFirst", func(t *testing.T) {
				res := s.post("/dead/purge", url.Values{"csrf": {token}, "only": {seed.Dead[3]}, "back": {"/messages/" + seed.Dead[3]}})
				require.Equal(t, http.StatusOK, res.status, res.body)
				require.Contains(t, res.body, "Purge 1 selected dead letter(s)?")
				require.Contains(t, res.body, seed.Dead[3])
				require.Equal(t, ports.StatusDead, statusOf(t, drv, seed.Dead[3]), "nothing happens before the confirmation")
				res = s.post("/dead/purge", confirmForm(t, res))
				require.Equal(t, http.StatusSeeOther, res.status, res.body)
				require.Equal(t, prefix+"/messages/"+seed.Dead[3]+"?done=purged&n=1&of=1", res.location)
				require.Equal(t, ports.MessageStatus(""), statusOf(t, drv, seed.Dead[3]))
			})

			t.Run("RequeueAllMatchingAFilterAsksFirst", func(t *testing.T) {
				// Dead[4] has key customer-1; Dead[1] had it too but is pending now.
				res := s.post("/dead/requeue", url.Values{"csrf": {token}, "all": {"1"}, "id": {seed.Dead[5]},
					"topic": {consoletest.DeadTopic}, "key": {"customer-1"}})
				require.Equal(t, http.StatusOK, res.status, res.body)
				require.Contains(t, res.body, "1 dead letter(s) of topic <b>"+consoletest.DeadTopic+"</b> with key <b>customer-1</b>?")
				f := confirmForm(t, res)
				require.Empty(t, f["id"], "all matches, not the ticked rows")
				res = s.post("/dead/requeue", f)
				require.Equal(t, http.StatusSeeOther, res.status, res.body)
				require.Equal(t, prefix+"/dead?done=requeued&n=1", res.location)
				require.Equal(t, ports.StatusPending, statusOf(t, drv, seed.Dead[4]))
				require.Equal(t, ports.StatusDead, statusOf(t, drv, seed.Dead[5]), "another key")
			})

			t.Run("PurgeAllMatchingLeavesWhatDiedAfterTheConfirmation", func(t *testing.T) {
				page := s.post("/dead/purge", url.Values{"csrf": {token}, "all": {"1"}, "topic": {consoletest.DeadTopic}})
				require.Equal(t, http.StatusOK, page.status, page.body)
				require.Contains(t, page.body, "1 dead letter(s) of topic")
				late := deadLetter(t, drv, consoletest.DeadTopic, "late")
				res := s.post("/dead/purge", confirmForm(t, page))
				require.Equal(t, http.StatusSeeOther, res.status, res.body)
				require.Equal(t, prefix+"/dead?done=purged&n=1", res.location)
				require.Equal(t, ports.MessageStatus(""), statusOf(t, drv, seed.Dead[5]))
				require.Equal(t, ports.StatusDead, statusOf(t, drv, late), "dead-lettered after the confirmation page")
				require.Equal(t, ports.StatusDead, statusOf(t, drv, seed.Hostile), "another topic")
			})

			t.Run("PurgeAllWithoutAFilter", func(t *testing.T) {
				page := s.post("/dead/purge", url.Values{"csrf": {token}, "all": {"1"}})
				require.Contains(t, page.body, "Purge 2 dead letter(s)?")
				late := deadLetter(t, drv, "other.topic", "")
				res := s.post("/dead/purge", confirmForm(t, page))
				require.Equal(t, http.StatusSeeOther, res.status, res.body)
				require.Equal(t, prefix+"/dead?done=purged&n=2", res.location)
				st, err := drv.Outbox().Stats(ctx)
				require.NoError(t, err)
				require.Equal(t, int64(1), st.Dead, "only the dead letter that died after the confirmation page is left")
				require.Equal(t, ports.StatusDead, statusOf(t, drv, late))
				require.Equal(t, map[string]int64{"ready": 2 + 4, "scheduled": 3, "leased": 2, "dead": 1}, counts(t, s.get("/", http.StatusOK).body),
					"an action recounts at once")
			})

			t.Run("PurgeExpiredIdempotencyRecordsAsksFirst", func(t *testing.T) {
				page := s.post("/idempotency/purge", url.Values{"csrf": {token}})
				require.Equal(t, http.StatusOK, page.status, page.body)
				require.Contains(t, page.body, "the 2 expired idempotency record(s)")
				st, err := drv.Idempotency().Stats(ctx)
				require.NoError(t, err)
				require.Equal(t, int64(2), st.Expired, "nothing happens before the confirmation")
				res := s.post("/idempotency/purge", confirmForm(t, page))
				require.Equal(t, http.StatusSeeOther, res.status, res.body)
				require.Equal(t, prefix+"/idempotency?done=idempotency-purged&n=2", res.location)
				st, err = drv.Idempotency().Stats(ctx)
				require.NoError(t, err)
				require.Equal(t, ports.IdempotencyStats{InProgress: 1, Completed: 3}, st)
				require.Contains(t, s.get("/idempotency?done=idempotency-purged&n=2", http.StatusOK).body, "Purged 2 expired idempotency record(s).")
			})

			t.Run("RequeueAllWithoutAFilterLeavesWhatDiedAfterTheConfirmation", func(t *testing.T) {
				before := deadLetter(t, drv, "other.topic", "before")
				page := s.post("/dead/requeue", url.Values{"csrf": {token}, "all": {"1"}})
				require.Equal(t, http.StatusOK, page.status, page.body)
				require.Contains(t, page.body, "Requeue 2 dead letter(s)?")
				db.Clock.Advance(time.Second) // what dies now dies after the page, whatever the clock's resolution
				late := deadLetter(t, drv, "other.topic", "after")
				res := s.post("/dead/requeue", confirmForm(t, page))
				require.Equal(t, http.StatusSeeOther, res.status, res.body)
				require.Equal(t, prefix+"/dead?done=requeued&n=2", res.location)
				require.Equal(t, ports.StatusPending, statusOf(t, drv, before))
				require.Equal(t, ports.StatusDead, statusOf(t, drv, late), "dead-lettered after the confirmation page")
				st, err := drv.Outbox().Stats(ctx)
				require.NoError(t, err)
				require.Equal(t, int64(1), st.Dead)
			})
		})
	}
}
