package opse2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

// clock is a manually advanced clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// migrated opens and migrates a fresh database of d with a fake clock.
func migrated(t *testing.T, d dialect, c *clock) *wharf.Driver {
	t.Helper()
	drv := openDriver(t, d, d.newDB(t), wharf.Options{Now: c.Now, Idempotency: wharf.IdempotencyOptions{TTL: time.Hour, Lease: time.Minute}})
	require.NoError(t, drv.Migrate(context.Background()))
	return drv
}

func reserve(t *testing.T, store wharf.Idempotency, ns, key string, ttl time.Duration) ports.Reservation {
	t.Helper()
	return reserveLeased(t, store, ns, key, ttl, 0)
}

func reserveLeased(t *testing.T, store wharf.Idempotency, ns, key string, ttl, lease time.Duration) ports.Reservation {
	t.Helper()
	r, err := store.Reserve(context.Background(), ports.ReserveRequest{
		IdempotencyKey: ports.IdempotencyKey{Namespace: ns, Key: key}, Fingerprint: "fp", TTL: ttl, Lease: lease,
	})
	require.NoError(t, err)
	require.Equal(t, ports.Reserved, r.Status, "%s/%s", ns, key)
	return r
}

func keysOf(recs []ports.IdempotencyRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Namespace + "/" + r.Key
	}
	return out
}

func TestIdempotencyAdmin(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d dialect) {
		ctx := context.Background()
		c := newClock()
		drv := migrated(t, d, c)
		store := drv.Idempotency()
		// Expiry order: expired-a, expired-b (10m, 20m TTLs, advanced past),
		// then abandoned, in-progress, completed (1h TTL each, later).
		ea := reserve(t, store, "orders", "expired-a", 10*time.Minute)
		require.NoError(t, store.Complete(ctx, ea, json.RawMessage(`{"n":1}`)))
		c.Advance(time.Second)
		reserve(t, store, "orders", "expired-b", 20*time.Minute)
		c.Advance(time.Second)
		reserve(t, store, "orders", "abandoned", 0) // lease 1m: expires below
		c.Advance(2 * time.Minute)
		reserveLeased(t, store, "payments", "in-progress", 0, time.Hour)
		c.Advance(time.Second)
		done := reserve(t, store, "payments", "completed", 0)
		require.NoError(t, store.Complete(ctx, done, json.RawMessage(`{"paid":true}`)))
		c.Advance(30 * time.Minute) // both short TTLs are over; the 1h ones are not
		now := c.Now()

		st, err := store.Stats(ctx)
		require.NoError(t, err)
		require.Equal(t, ports.IdempotencyStats{InProgress: 1, Abandoned: 1, Completed: 1, Expired: 2,
			OldestExpiry: ea.ExpiresAt.Truncate(time.Microsecond)}, st)
		require.EqualValues(t, 5, st.Total())

		all, err := store.List(ctx, ports.IdempotencyFilter{})
		require.NoError(t, err)
		require.Equal(t, []string{"orders/expired-a", "orders/expired-b", "orders/abandoned", "payments/in-progress", "payments/completed"}, keysOf(all),
			"records in expiry order")
		require.Equal(t, ports.IdempotencyCompleted, all[0].Status)
		require.JSONEq(t, `{"n":1}`, string(all[0].Result))
		require.Len(t, all[0].ID, 64)

		for _, tc := range []struct {
			name   string
			filter ports.IdempotencyFilter
			want   []string
		}{
			{"Namespace", ports.IdempotencyFilter{Namespace: "payments"}, []string{"payments/in-progress", "payments/completed"}},
			{"Key", ports.IdempotencyFilter{Key: "abandoned"}, []string{"orders/abandoned"}},
			{"Status", ports.IdempotencyFilter{Status: ports.IdempotencyCompleted}, []string{"orders/expired-a", "payments/completed"}},
			{"Expired", ports.IdempotencyFilter{ExpiredAt: now}, []string{"orders/expired-a", "orders/expired-b"}},
			{"Live", ports.IdempotencyFilter{LiveAt: now, Namespace: "orders"}, []string{"orders/abandoned"}},
			{"NoMatch", ports.IdempotencyFilter{Namespace: "nope"}, []string{}},
		} {
			recs, err := store.List(ctx, tc.filter)
			require.NoError(t, err, tc.name)
			require.Equal(t, tc.want, keysOf(recs), tc.name)
		}
		var paged []ports.IdempotencyRecord
		for after := ""; ; {
			page, err := store.List(ctx, ports.IdempotencyFilter{After: after, Limit: 2})
			require.NoError(t, err)
			paged = append(paged, page...)
			if len(page) < 2 {
				break
			}
			after = page[len(page)-1].Cursor
		}
		require.Equal(t, keysOf(all), keysOf(paged), "keyset pages add up to the whole list")
		for _, bad := range []ports.IdempotencyFilter{{After: "nope"}, {Limit: 1001}, {Status: "done"}} {
			_, err := store.List(ctx, bad)
			require.ErrorIs(t, err, ports.ErrInvalidArgument, "%+v", bad)
		}

		_, err = store.Purge(ctx, now.Add(2*time.Hour))
		require.ErrorIs(t, err, ports.ErrInvalidArgument, "a cut-off in the future would delete live records")
		require.ErrorContains(t, err, "is after now")
		n, err := store.Purge(ctx, now)
		require.NoError(t, err)
		require.EqualValues(t, 2, n, "the expired records, and only them: the refused purge deleted nothing")
		rest, err := store.List(ctx, ports.IdempotencyFilter{})
		require.NoError(t, err)
		require.Equal(t, []string{"orders/abandoned", "payments/in-progress", "payments/completed"}, keysOf(rest), "live records stay")
		st, err = store.Stats(ctx)
		require.NoError(t, err)
		require.Zero(t, st.Expired)
		require.True(t, st.OldestExpiry.IsZero())
		replay, err := store.Reserve(ctx, ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "payments", Key: "completed"}, Fingerprint: "fp"})
		require.NoError(t, err)
		require.Equal(t, ports.Replay, replay.Status, "a live completed record still replays")
		reserve(t, store, "orders", "expired-a", 0) // purged: the key is new again
		_, err = store.Purge(ctx, time.Time{})
		require.ErrorIs(t, err, ports.ErrInvalidArgument)
	})
}

// TestPurgesRunInBoundedBatches purges through a Maintainer whose batches
// hold 3 rows: each purge takes one statement per 3 rows and deletes only
// what is past its cut-off.
func TestPurgesRunInBoundedBatches(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d dialect) {
		ctx := context.Background()
		c := newClock()
		drv := migrated(t, d, c)
		ob := drv.Outbox()
		deadLetters := func(n int) []string {
			msgs := make([]ports.OutboxMessage, n)
			for i := range msgs {
				msgs[i] = ports.OutboxMessage{Topic: "ops.dead", Payload: json.RawMessage(`{}`), MaxAttempts: 1}
			}
			ids, err := ob.Enqueue(ctx, msgs...)
			require.NoError(t, err)
			claimed, err := ob.Claim(ctx, ports.ClaimOptions{Limit: n, Lease: time.Minute, Topics: []string{"ops.dead"}})
			require.NoError(t, err)
			require.Len(t, claimed, n)
			for _, m := range claimed {
				require.NoError(t, ob.DeadLetter(ctx, m.Claim(), "boom"))
			}
			return ids
		}
		old := deadLetters(7)
		for i := range 8 {
			reserve(t, drv.Idempotency(), "ops", fmt.Sprintf("old-%d", i), time.Minute)
		}
		c.Advance(2 * time.Hour)
		recent := deadLetters(2)
		reserve(t, drv.Idempotency(), "ops", "recent", time.Hour)
		_, err := ob.Enqueue(ctx, ports.OutboxMessage{Topic: "ops.pending", Payload: json.RawMessage(`{}`)})
		require.NoError(t, err)
		c.Advance(30 * time.Minute)

		m, err := wharf.NewMaintainer(drv, wharf.MaintainerOptions{BatchSize: 3, BatchPause: -1, DeadLetterRetention: time.Hour})
		require.NoError(t, err)
		r, err := m.RunOnce(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 8, r.IdempotencyPurged)
		require.EqualValues(t, 7, r.DeadLettersPurged)
		require.Equal(t, 3+3, r.Batches, "8 records in batches of 3, 7 dead letters in batches of 3")

		dead, err := ob.List(ctx, ports.OutboxFilter{Status: ports.StatusDead})
		require.NoError(t, err)
		require.Equal(t, recent, recordIDs(dead), "dead letters within the retention stay")
		st, err := ob.Stats(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, st.Ready, "pending messages are never purged")
		left, err := drv.Idempotency().List(ctx, ports.IdempotencyFilter{})
		require.NoError(t, err)
		require.Equal(t, []string{"ops/recent"}, keysOf(left))
		require.NotEmpty(t, old)

		// The port's Purge on the outbox: the same cut-off rule.
		c.Advance(2 * time.Hour)
		n, err := ob.Purge(ctx, c.Now().Add(-time.Hour))
		require.NoError(t, err)
		require.EqualValues(t, 2, n)
		r, err = m.RunOnce(ctx)
		require.NoError(t, err)
		require.Equal(t, wharf.MaintenanceRound{Started: c.Now(), Duration: r.Duration, IdempotencyPurged: 1, Batches: 2}, r,
			"one batch per table, each short of full")
	})
}

func TestOutboxListFindsOneMessageByID(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d dialect) {
		ctx := context.Background()
		drv := migrated(t, d, newClock())
		ids, err := drv.Outbox().Enqueue(ctx, ports.OutboxMessage{Topic: "a", Payload: json.RawMessage(`{}`)},
			ports.OutboxMessage{Topic: "b", Payload: json.RawMessage(`{}`)})
		require.NoError(t, err)
		recs, err := drv.Outbox().List(ctx, ports.OutboxFilter{ID: ids[1]})
		require.NoError(t, err)
		require.Equal(t, []string{ids[1]}, recordIDs(recs))
		recs, err = drv.Outbox().List(ctx, ports.OutboxFilter{ID: "no-such-id"})
		require.NoError(t, err)
		require.Empty(t, recs)
	})
}

func recordIDs(recs []ports.OutboxRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}
