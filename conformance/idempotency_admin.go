package conformance

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/ports"
)

// idempotencyAdminTests cover the IdempotencyAdmin interface.
func idempotencyAdminTests() []testCase {
	return []testCase{
		{"AdminStatsCountRecordsByState", testIdemAdminStats},
		{"AdminListFiltersAndPagesInExpiryOrder", testIdemAdminList},
		{"AdminPurgeDeletesExpiredRecordsOnly", testIdemAdminPurge},
	}
}

// idemAdmin returns the fixture's store on the pool as an
// IdempotencyAdmin, with its expiry configured.
func (f *fixture) idemAdmin() (ports.Idempotency, ports.IdempotencyAdmin) {
	f.t.Helper()
	store := f.idempotency(f.db)
	admin, ok := store.(ports.IdempotencyAdmin)
	require.True(f.t, ok, "the driver's idempotency store implements ports.IdempotencyAdmin")
	return store, admin
}

// idemStates reserves records in every state: completed (c), in progress
// (p), abandoned (a: lease expired), and expired (x, TTL short), which
// expire in the order x, c, a, p.
func (f *fixture) idemStates(store ports.Idempotency) {
	f.t.Helper()
	done := f.reserve(store, reserveReq("conf.admin", "c", "fp"))
	require.NoError(f.t, store.Complete(f.ctx, done, json.RawMessage(`{"ok":true}`)))
	f.clock.Advance(time.Second) // distinct expiries: a defined order
	short := reserveReq("conf.admin", "a", "fp")
	short.Lease = time.Second
	f.reserve(store, short)
	expiring := reserveReq("conf.other", "x", "fp")
	expiring.TTL = 2 * time.Second
	f.reserve(store, expiring)
	f.clock.Advance(5 * time.Second) // a's lease and x's TTL are over
	f.reserve(store, reserveReq("conf.admin", "p", "fp"))
}

func testIdemAdminStats(t *testing.T, h Harness) {
	f := setup(t, h)
	store, admin := f.idemAdmin()
	st, err := admin.Stats(f.ctx)
	require.NoError(t, err)
	require.Equal(t, ports.IdempotencyStats{}, st, "an empty store has zero stats")
	expiredAt := f.clock.Now().Add(3 * time.Second) // x: reserved a second in, for 2s
	f.idemStates(store)
	st, err = admin.Stats(f.ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, st.Completed)
	require.EqualValues(t, 1, st.InProgress)
	require.EqualValues(t, 1, st.Abandoned, "a reservation whose lease expired")
	require.EqualValues(t, 1, st.Expired)
	require.EqualValues(t, 4, st.Total())
	requireTime(t, expiredAt, st.OldestExpiry, "OldestExpiry is the expiry of the longest-expired record")
}

func testIdemAdminList(t *testing.T, h Harness) {
	f := setup(t, h)
	store, admin := f.idemAdmin()
	f.idemStates(store)
	list := func(filter ports.IdempotencyFilter) []string {
		t.Helper()
		recs, err := admin.List(f.ctx, filter)
		require.NoError(t, err)
		keys := []string{}
		for _, r := range recs {
			keys = append(keys, r.Key)
		}
		return keys
	}
	require.Equal(t, []string{"x", "c", "a", "p"}, list(ports.IdempotencyFilter{}), "every record, in expiry order")
	require.Equal(t, []string{"c", "a", "p"}, list(ports.IdempotencyFilter{Namespace: "conf.admin"}))
	require.Equal(t, []string{"a"}, list(ports.IdempotencyFilter{Namespace: "conf.admin", Key: "a"}))
	require.Equal(t, []string{"c"}, list(ports.IdempotencyFilter{Status: ports.IdempotencyCompleted}))
	require.Equal(t, []string{"x"}, list(ports.IdempotencyFilter{ExpiredAt: f.clock.Now()}), "the expired ones")
	require.Equal(t, []string{"c", "a", "p"}, list(ports.IdempotencyFilter{LiveAt: f.clock.Now()}), "the live ones")

	recs, err := admin.List(f.ctx, ports.IdempotencyFilter{Status: ports.IdempotencyCompleted})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.JSONEq(t, `{"ok":true}`, string(recs[0].Result))
	require.Equal(t, "fp", recs[0].Fingerprint)
	require.NotEmpty(t, recs[0].ID)

	var pages []string
	after := ""
	for {
		recs, err := admin.List(f.ctx, ports.IdempotencyFilter{Limit: 3, After: after})
		require.NoError(t, err)
		for _, r := range recs {
			pages = append(pages, r.Key)
		}
		if len(recs) < 3 {
			break
		}
		after = recs[len(recs)-1].Cursor
	}
	require.Equal(t, []string{"x", "c", "a", "p"}, pages, "keyset pages join up without gaps or repeats")

	_, err = admin.List(f.ctx, ports.IdempotencyFilter{Limit: 1001})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	_, err = admin.List(f.ctx, ports.IdempotencyFilter{Status: "done"})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
}

func testIdemAdminPurge(t *testing.T, h Harness) {
	f := setup(t, h)
	store, admin := f.idemAdmin()
	f.idemStates(store)
	n, err := admin.Purge(f.ctx, f.clock.Now())
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "only the expired record is purged")
	st, err := admin.Stats(f.ctx)
	require.NoError(t, err)
	require.Zero(t, st.Expired)
	require.EqualValues(t, 3, st.Total(), "live records, completed or not, stay")
	r := f.requireStatus(store, reserveReq("conf.admin", "c", "fp"), ports.Replay, "a completed record still replays after a purge")
	require.JSONEq(t, `{"ok":true}`, string(r.Result))

	f.clock.Advance(48 * time.Hour) // every record expires (TTL 24h)
	n, err = admin.Purge(f.ctx, f.clock.Now())
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	st, err = admin.Stats(f.ctx)
	require.NoError(t, err)
	require.Zero(t, st.Total())
	f.requireStatus(store, reserveReq("conf.admin", "c", "fp"), ports.Reserved, "a purged key is new")
}
