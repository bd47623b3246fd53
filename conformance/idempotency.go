package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

func idempotencyTests() []testCase {
	return append([]testCase{
		{"FirstReserveReserves", testIdemFirstReserve},
		{"UsesDefaultLeaseAndTTL", testIdemDefaults},
		{"SecondReserveWhileHeldIsInProgress", testIdemInProgress},
		{"DifferentFingerprintIsMismatch", testIdemMismatch},
		{"CompleteThenReserveReplaysResult", testIdemReplay},
		{"FailReleasesKey", testIdemFail},
		{"ExpiredRecordIsReplacedByFreshReservation", testIdemExpired},
		{"ExpiredLeaseIsTakenOverAndOldHolderIsFenced", testIdemTakeover},
		{"ExpiredLeaseWithDifferentFingerprintIsMismatch", testIdemTakeoverMismatch},
		{"CompleteTwiceIsMutationError", testIdemCompleteTwice},
		{"FailAfterCompleteIsMutationError", testIdemFailAfterComplete},
		{"FabricatedReservationIsMutationError", testIdemFabricated},
		{"ScopeMapsAreCanonical", testIdemScopes},
		{"InvalidInputIsRejectedAndStoresNothing", testIdemInvalid},
		{"CompleteWithInvalidJSONKeepsReservation", testIdemInvalidResult},
		{"ConcurrentReserveYieldsExactlyOneReserved", testIdemRace},
		{"CompletesAtomicallyWithBusinessWrite", testIdemAtomicCommit},
		{"RollbackLeavesKeyReservable", testIdemAtomicRollback},
		{"RunIdempotentlyInsideTransactions", testIdemRunIdempotently},
	}, idempotencyAdminTests()...)
}

// reserveReq is a request with an explicit one-minute lease and one-hour
// TTL.
func reserveReq(ns, key, fingerprint string) ports.ReserveRequest {
	return ports.ReserveRequest{
		IdempotencyKey: ports.IdempotencyKey{Namespace: ns, Key: key},
		Fingerprint:    fingerprint,
		Lease:          time.Minute,
		TTL:            time.Hour,
	}
}

func (f *fixture) reserve(store ports.Idempotency, req ports.ReserveRequest) ports.Reservation {
	f.t.Helper()
	r, err := store.Reserve(f.ctx, req)
	require.NoError(f.t, err, "Reserve")
	return r
}

func (f *fixture) requireStatus(store ports.Idempotency, req ports.ReserveRequest, want ports.ReserveStatus, msgAndArgs ...any) ports.Reservation {
	f.t.Helper()
	r := f.reserve(store, req)
	require.Equal(f.t, want.String(), r.Status.String(), msgAndArgs...)
	return r
}

func testIdemFirstReserve(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	now := f.clock.Now()
	req := reserveReq("conf.orders", "key-1", "fp-1")
	req.Scope = map[string]string{"user": "u7", "tenant": "t1"}
	r := f.requireStatus(store, req, ports.Reserved)
	require.Equal(t, "conf.orders", r.Namespace)
	require.Equal(t, "key-1", r.Key)
	require.Equal(t, `{"tenant":"t1","user":"u7"}`, r.ScopeKey, "ScopeKey is the canonical scope: a JSON object with sorted keys")
	require.NotEmpty(t, r.Token)
	require.False(t, r.TakenOver)
	require.Empty(t, r.Result)
	requireTime(t, now.Add(time.Minute), r.LockedUntil, "LockedUntil = now + lease")
	requireTime(t, now.Add(time.Hour), r.ExpiresAt, "ExpiresAt = now + TTL")
}

func testIdemDefaults(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotencyWith(f.db, config{lease: 30 * time.Second, ttl: 2 * time.Hour})
	now := f.clock.Now()
	req := reserveReq("conf.defaults", "key-1", "fp")
	req.Lease, req.TTL = 0, 0
	r := f.requireStatus(store, req, ports.Reserved)
	requireTime(t, now.Add(30*time.Second), r.LockedUntil, "a zero Lease means the store's default")
	requireTime(t, now.Add(2*time.Hour), r.ExpiresAt, "a zero TTL means the store's default")

	f.clock.Advance(31 * time.Second)
	r2 := f.requireStatus(store, req, ports.Reserved, "the default lease expired: taken over")
	require.True(t, r2.TakenOver)
}

func testIdemInProgress(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	req := reserveReq("conf.orders", "key-1", "fp-1")
	r := f.requireStatus(store, req, ports.Reserved)
	f.clock.Advance(30 * time.Second)
	p := f.requireStatus(store, req, ports.InProgress, "the key is held")
	requireTime(t, r.LockedUntil, p.LockedUntil, "InProgress reports the holder's lease")
	require.NotEqual(t, r.Token, p.Token, "InProgress does not hand out the holder's token")
	f.requireStatus(f.idempotency(f.db), req, ports.InProgress, "another store instance sees the same record")
	// The holder is unaffected.
	require.NoError(t, store.Complete(f.ctx, r, raw(`{"ok":true}`)))
}

func testIdemMismatch(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	req := reserveReq("conf.orders", "key-1", "fp-1")
	other := reserveReq("conf.orders", "key-1", "fp-2")
	r := f.requireStatus(store, req, ports.Reserved)
	f.requireStatus(store, other, ports.FingerprintMismatch, "while in progress")
	require.NoError(t, store.Complete(f.ctx, r, raw(`{"id":1}`)))
	m := f.requireStatus(store, other, ports.FingerprintMismatch, "after completion")
	require.Empty(t, m.Result, "a mismatch does not reveal the stored result")
	f.requireStatus(store, req, ports.Replay, "the original request still replays")
}

func testIdemReplay(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	req := reserveReq("conf.orders", "key-1", "fp-1")
	r := f.requireStatus(store, req, ports.Reserved)
	result := `{"id":"o-1","total":12.5,"items":[{"sku":"a","qty":2}],"note":"Zoë 🚢","none":null}`
	require.NoError(t, store.Complete(f.ctx, r, raw(result)))
	for i := range 2 {
		p := f.requireStatus(store, req, ports.Replay, "replay %d", i)
		require.JSONEq(t, result, string(p.Result), "the stored result is replayed exactly")
		require.Equal(t, "key-1", p.Key)
	}
	r2 := f.requireStatus(store, reserveReq("conf.orders", "key-2", "fp-1"), ports.Reserved)
	require.NoError(t, store.Complete(f.ctx, r2, raw(`"plain string"`)))
	require.JSONEq(t, `"plain string"`, string(f.requireStatus(store, reserveReq("conf.orders", "key-2", "fp-1"), ports.Replay).Result))
}

func testIdemFail(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	req := reserveReq("conf.orders", "key-1", "fp-1")
	r := f.requireStatus(store, req, ports.Reserved)
	require.NoError(t, store.Fail(f.ctx, r))
	r2 := f.requireStatus(store, req, ports.Reserved, "Fail releases the key")
	require.NotEqual(t, r.Token, r2.Token, "a new reservation has a new token")
	require.False(t, r2.TakenOver, "a released key is reserved, not taken over")
	requireMutationError(t, store.Complete(f.ctx, r, raw(`{}`)), "complete", r)
	requireMutationError(t, store.Fail(f.ctx, r), "fail", r)
	require.NoError(t, store.Complete(f.ctx, r2, raw(`{"second":true}`)), "the new reservation holds")
	require.JSONEq(t, `{"second":true}`, string(f.requireStatus(store, req, ports.Replay).Result))
}

func testIdemExpired(t *testing.T, h Harness) {
	for _, completed := range []bool{true, false} {
		name := "InProgress"
		if completed {
			name = "Completed"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, h)
			store := f.idempotency(f.db)
			req := reserveReq("conf.orders", "key-1", "fp-1")
			r := f.requireStatus(store, req, ports.Reserved)
			if completed {
				require.NoError(t, store.Complete(f.ctx, r, raw(`{"old":true}`)))
				p := f.requireStatus(store, req, ports.Replay)
				requireTime(t, r.ExpiresAt, p.ExpiresAt, "the completed record keeps the request's TTL (1h), not the store's default (24h)")
			}
			f.clock.Advance(time.Hour + time.Second)
			// Even a different request may use the key once the record expired.
			other := reserveReq("conf.orders", "key-1", "fp-other")
			r2 := f.requireStatus(store, other, ports.Reserved, "an expired record is removed first")
			require.False(t, r2.TakenOver, "an expired record is replaced, not taken over")
			require.Empty(t, r2.Result)
			require.NotEqual(t, r.Token, r2.Token)
			requireTime(t, f.clock.Now().Add(time.Hour), r2.ExpiresAt, "a fresh record with a fresh TTL")
			requireMutationError(t, store.Complete(f.ctx, r, raw(`{}`)), "complete", r)
			require.NoError(t, store.Complete(f.ctx, r2, raw(`{"new":true}`)))
			require.JSONEq(t, `{"new":true}`, string(f.requireStatus(store, other, ports.Replay).Result))
		})
	}
}

func testIdemTakeover(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	req := reserveReq("conf.orders", "key-1", "fp-1")
	req.Scope = map[string]string{"tenant": "t1"}
	old := f.requireStatus(store, req, ports.Reserved)
	f.clock.Advance(time.Minute + time.Second)

	cur := f.requireStatus(store, req, ports.Reserved, "an expired lease is taken over by the same request")
	require.True(t, cur.TakenOver)
	require.NotEqual(t, old.Token, cur.Token, "the takeover fences the old holder with a new token")
	requireTime(t, f.clock.Now().Add(time.Minute), cur.LockedUntil)

	requireMutationError(t, store.Complete(f.ctx, old, raw(`{"old":true}`)), "complete", old)
	requireMutationError(t, store.Fail(f.ctx, old), "fail", old)
	f.requireStatus(store, req, ports.InProgress, "the old holder's calls changed nothing")
	require.NoError(t, store.Complete(f.ctx, cur, raw(`{"new":true}`)))
	require.JSONEq(t, `{"new":true}`, string(f.requireStatus(store, req, ports.Replay).Result))
}

func testIdemTakeoverMismatch(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	req := reserveReq("conf.orders", "key-1", "fp-1")
	old := f.requireStatus(store, req, ports.Reserved)
	f.clock.Advance(time.Minute + time.Second)
	f.requireStatus(store, reserveReq("conf.orders", "key-1", "fp-2"), ports.FingerprintMismatch,
		"only the same request may take over an abandoned reservation")
	require.NoError(t, store.Complete(f.ctx, old, raw(`{"late":true}`)), "a late holder that was not taken over may still complete")
	f.requireStatus(store, req, ports.Replay)
}

func testIdemCompleteTwice(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	req := reserveReq("conf.orders", "key-1", "fp-1")
	r := f.requireStatus(store, req, ports.Reserved)
	require.NoError(t, store.Complete(f.ctx, r, raw(`{"first":true}`)))
	requireMutationError(t, store.Complete(f.ctx, r, raw(`{"second":true}`)), "complete", r)
	require.JSONEq(t, `{"first":true}`, string(f.requireStatus(store, req, ports.Replay).Result), "the second Complete changed nothing")
}

func testIdemFailAfterComplete(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	req := reserveReq("conf.orders", "key-1", "fp-1")
	r := f.requireStatus(store, req, ports.Reserved)
	require.NoError(t, store.Complete(f.ctx, r, raw(`{"done":true}`)))
	requireMutationError(t, store.Fail(f.ctx, r), "fail", r)
	require.JSONEq(t, `{"done":true}`, string(f.requireStatus(store, req, ports.Replay).Result), "Fail did not release a completed key")
}

func testIdemFabricated(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	req := reserveReq("conf.orders", "key-1", "fp-1")
	held := f.requireStatus(store, req, ports.Reserved)

	forged := held
	forged.Token = "conformance-fabricated"
	requireMutationError(t, store.Complete(f.ctx, forged, raw(`{"forged":true}`)), "complete", forged)
	requireMutationError(t, store.Fail(f.ctx, forged), "fail", forged)

	never := ports.Reservation{Status: ports.Reserved, Namespace: "conf.orders", Key: "never-reserved", Token: held.Token}
	requireMutationError(t, store.Complete(f.ctx, never, raw(`{}`)), "complete", never)
	requireMutationError(t, store.Fail(f.ctx, never), "fail", never)
	f.requireStatus(store, reserveReq("conf.orders", "never-reserved", "fp-1"), ports.Reserved, "the forged calls stored nothing")

	f.requireStatus(store, req, ports.InProgress, "the forged calls did not release the real reservation")
	require.NoError(t, store.Complete(f.ctx, held, raw(`{"real":true}`)))
	require.JSONEq(t, `{"real":true}`, string(f.requireStatus(store, req, ports.Replay).Result))
}

func testIdemScopes(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	withScope := func(scope map[string]string) ports.ReserveRequest {
		req := reserveReq("conf.orders", "key-1", "fp-1")
		req.Scope = scope
		return req
	}
	ab := withScope(map[string]string{"a": "1", "b": "2"})
	r := f.requireStatus(store, ab, ports.Reserved)
	require.NoError(t, store.Complete(f.ctx, r, raw(`{"scope":"ab"}`)))

	ba := withScope(map[string]string{"b": "2", "a": "1"})
	p := f.requireStatus(store, ba, ports.Replay, "the order of scope entries does not matter")
	require.Equal(t, r.ScopeKey, p.ScopeKey)
	require.JSONEq(t, `{"scope":"ab"}`, string(p.Result))

	for name, scope := range map[string]map[string]string{
		"Subset":     {"a": "1"},
		"OtherValue": {"a": "1", "b": "3"},
		"Superset":   {"a": "1", "b": "2", "c": "3"},
		"None":       nil,
	} {
		other := f.requireStatus(store, withScope(scope), ports.Reserved, "scope %s is another key", name)
		require.NotEqual(t, r.ScopeKey, other.ScopeKey, "scope %s", name)
	}
	// An empty map is the same scope as nil.
	f.requireStatus(store, withScope(map[string]string{}), ports.InProgress, "an empty scope equals no scope")
}

func testIdemInvalid(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	long, longest := strings.Repeat("é", 256), strings.Repeat("é", 255)
	cases := []struct {
		name      string
		bad, good ports.ReserveRequest
	}{
		{"EmptyNamespace", reserveReq("", "k", "fp"), reserveReq("n", "k", "fp")},
		{"EmptyKey", reserveReq("conf.n", "", "fp"), reserveReq("conf.n", "k", "fp")},
		{"EmptyFingerprint", reserveReq("conf.fp", "k", ""), reserveReq("conf.fp", "k", "fp")},
		{"Namespace256Characters", reserveReq(long, "k", "fp"), reserveReq(longest, "k", "fp")},
		{"Key256Characters", reserveReq("conf.key", long, "fp"), reserveReq("conf.key", longest, "fp")},
		{"Fingerprint256Characters", reserveReq("conf.fp256", "k", long), reserveReq("conf.fp256", "k", longest)},
		{"KeyWithNUL", reserveReq("conf.nul", "k\x00", "fp"), reserveReq("conf.nul", "k", "fp")},
		{"NamespaceWithNUL", reserveReq("conf.nul\x00", "k", "fp"), reserveReq("conf.nul2", "k", "fp")},
	}
	longScope := reserveReq("conf.scope", "k", "fp")
	longScope.Scope = map[string]string{"s": strings.Repeat("x", 300)}
	cases = append(cases, struct {
		name      string
		bad, good ports.ReserveRequest
	}{"Scope256Characters", longScope, reserveReq("conf.scope", "k", "fp")})

	for _, tc := range cases {
		r, err := store.Reserve(f.ctx, tc.bad)
		require.ErrorIs(t, err, ports.ErrInvalidArgument, "Reserve with %s", tc.name)
		require.NotEqual(t, ports.Reserved, r.Status, "Reserve with %s", tc.name)
	}
	for _, tc := range cases {
		// Had the invalid request been stored (for example truncated), the
		// valid one would see InProgress or a mismatch.
		f.requireStatus(store, tc.good, ports.Reserved, "after the rejected %s, nothing was stored", tc.name)
	}
}

func testIdemInvalidResult(t *testing.T, h Harness) {
	f := setup(t, h)
	store := f.idempotency(f.db)
	req := reserveReq("conf.orders", "key-1", "fp-1")
	r := f.requireStatus(store, req, ports.Reserved)
	for _, bad := range []string{`{"a":`, `hello`, `{"a":1}}`} {
		require.ErrorIs(t, store.Complete(f.ctx, r, raw(bad)), ports.ErrInvalidArgument, "Complete with result %q", bad)
	}
	f.requireStatus(store, req, ports.InProgress, "the reservation is still held")
	require.NoError(t, store.Complete(f.ctx, r, raw(`{"ok":true}`)), "the holder can still complete")
	require.JSONEq(t, `{"ok":true}`, string(f.requireStatus(store, req, ports.Replay).Result))
}

func testIdemRace(t *testing.T, h Harness) {
	const n = 16
	f := setup(t, h)
	stores := make([]ports.Idempotency, n)
	for i := range stores {
		stores[i] = f.idempotency(f.db)
	}
	req := reserveReq("conf.race", "key-1", "fp-1")
	results := make([]ports.Reservation, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, store := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = store.Reserve(f.ctx, req)
		}()
	}
	close(start)
	wg.Wait()

	require.NoError(t, errors.Join(errs...), "no concurrent Reserve fails")
	counts := map[string]int{}
	var winner ports.Reservation
	for _, r := range results {
		counts[r.Status.String()]++
		if r.Status == ports.Reserved {
			winner = r
		}
	}
	require.Equal(t, map[string]int{"reserved": 1, "in_progress": n - 1}, counts, "exactly one Reserved, the rest InProgress")
	require.NoError(t, stores[0].Complete(f.ctx, winner, raw(`{"winner":true}`)), "the winner holds the key")
	f.requireStatus(stores[n-1], req, ports.Replay)
}

func testIdemAtomicCommit(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	uow, _ := f.unitOfWork(uowConfig{driver: f.idemConfig()})
	req := reserveReq("conf.orders", "key-1", "fp-1")
	var status ports.ReserveStatus
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		store := tx.Idempotency
		r, err := store.Reserve(ctx, req)
		if err != nil {
			return err
		}
		status = r.Status
		if r.Status != ports.Reserved {
			return fmt.Errorf("conformance: Reserve returned %v", r.Status)
		}
		if err := insertItem(ctx, tx.DB, "order-1", "x"); err != nil {
			return err
		}
		return store.Complete(ctx, r, raw(`{"order":"order-1"}`))
	})
	require.NoError(t, err)
	require.Equal(t, ports.Reserved, status)
	require.Equal(t, []string{"order-1"}, f.items(), "the business write committed")
	p := f.requireStatus(f.idempotency(f.db), req, ports.Replay, "the record committed with it")
	require.JSONEq(t, `{"order":"order-1"}`, string(p.Result))
}

func testIdemAtomicRollback(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	uow, _ := f.unitOfWork(uowConfig{driver: f.idemConfig()})
	req := reserveReq("conf.orders", "key-1", "fp-1")
	completed := false
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		store := tx.Idempotency
		r, err := store.Reserve(ctx, req)
		if err != nil {
			return err
		}
		if err := insertItem(ctx, tx.DB, "order-1", "x"); err != nil {
			return err
		}
		if err := store.Complete(ctx, r, raw(`{"order":"order-1"}`)); err != nil {
			return err
		}
		completed = true
		return errConfRollback
	})
	require.ErrorIs(t, err, errConfRollback)
	require.True(t, completed, "Complete inside the transaction succeeded")
	require.Empty(t, f.items(), "the business write rolled back")
	f.requireStatus(f.idempotency(f.db), req, ports.Reserved, "the record rolled back with it: the key is free")
}

type confOrder struct {
	OrderID string `json:"order_id"`
	Call    int    `json:"call"`
}

func testIdemRunIdempotently(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	uow, _ := f.unitOfWork(uowConfig{driver: f.idemConfig()})
	calls := 0
	failNext := false
	run := func(req ports.ReserveRequest) (confOrder, bool, error) {
		var res confOrder
		var replayed bool
		err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
			var err error
			res, replayed, err = core.RunIdempotently(ctx, tx.Idempotency, req, func(ctx context.Context) (confOrder, error) {
				calls++
				if failNext {
					failNext = false
					return confOrder{}, errConfRollback
				}
				id := fmt.Sprintf("order-%d", calls)
				return confOrder{OrderID: id, Call: calls}, insertItem(ctx, tx.DB, id, req.Key)
			})
			return err
		})
		return res, replayed, err
	}

	req := reserveReq("conf.orders", "key-1", "fp-1")
	first, replayed, err := run(req)
	require.NoError(t, err)
	require.False(t, replayed)
	require.Equal(t, confOrder{OrderID: "order-1", Call: 1}, first)
	second, replayed, err := run(req)
	require.NoError(t, err)
	require.True(t, replayed, "the second call replays")
	require.Equal(t, first, second, "with the stored result")
	require.Equal(t, 1, calls, "fn ran once")
	require.Equal(t, []string{"order-1"}, f.items())

	_, _, err = run(reserveReq("conf.orders", "key-1", "fp-2"))
	require.ErrorIs(t, err, ports.ErrIdempotencyMismatch)

	held := f.requireStatus(f.idempotency(f.db), reserveReq("conf.orders", "key-2", "fp-1"), ports.Reserved)
	_, _, err = run(reserveReq("conf.orders", "key-2", "fp-1"))
	require.ErrorIs(t, err, ports.ErrIdempotencyInProgress)
	require.Equal(t, 1, calls, "fn does not run for a key in progress or a mismatch")
	require.NoError(t, f.idempotency(f.db).Fail(f.ctx, held))

	failNext = true
	_, _, err = run(reserveReq("conf.orders", "key-3", "fp-1"))
	require.ErrorIs(t, err, errConfRollback)
	third, replayed, err := run(reserveReq("conf.orders", "key-3", "fp-1"))
	require.NoError(t, err, "after a failure the key runs again")
	require.False(t, replayed)
	require.Equal(t, confOrder{OrderID: "order-3", Call: 3}, third)
	require.Equal(t, []string{"order-1", "order-3"}, f.items())
}
