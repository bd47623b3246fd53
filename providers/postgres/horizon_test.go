package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/postgres"
)

// horizonMessages is how many messages are delivered before the claim is
// measured.
const horizonMessages = 50_000

// claimCost delivers horizonMessages messages through a fresh outbox at
// 500 a second of its clock (50 every 100 ms), with the MVCC horizon pinned by an idle
// transaction of another session when pinned, then enqueues a few more and
// returns the buffers (shared hits and reads) that the next claim statement
// touches: bounded by the claim cursor, as the outbox runs it between
// rescans, and from the start, as a rescan runs it.
func claimCost(t *testing.T, pinned bool) (bounded, rescan int64) {
	t.Helper()
	ctx := context.Background()
	clock := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	drv := newTestDriver(t, wharf.Options{Now: func() time.Time { return clock }})
	require.NoError(t, drv.Migrate(ctx))
	db := drv.DB()
	if pinned {
		conn, err := db.Conn(ctx)
		require.NoError(t, err)
		pin, err := conn.BeginTx(ctx, nil)
		require.NoError(t, err)
		var xid int64
		require.NoError(t, pin.QueryRowContext(ctx, "SELECT txid_current()").Scan(&xid))
		t.Cleanup(func() { _ = pin.Rollback(); _ = conn.Close() })
	}
	ob := drv.Outbox()
	msgs := make([]ports.OutboxMessage, 50)
	for i := range msgs {
		msgs[i] = ports.OutboxMessage{Topic: "h", Payload: json.RawMessage(`{}`)}
	}
	delivered := 0
	for delivered < horizonMessages {
		clock = clock.Add(100 * time.Millisecond)
		_, err := ob.Enqueue(ctx, msgs...)
		require.NoError(t, err)
		for {
			got, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 100, Lease: time.Minute})
			require.NoError(t, err)
			if len(got) == 0 {
				break
			}
			claims := make([]ports.Claim, len(got))
			for i, m := range got {
				claims[i] = m.Claim()
			}
			require.NoError(t, ob.Complete(ctx, claims...))
			delivered += len(got)
		}
	}
	clock = clock.Add(100 * time.Millisecond)
	_, err := ob.Enqueue(ctx, msgs...)
	require.NoError(t, err)
	now := core.FormatTime(clock)
	p := outboxsql.ClaimParams{Now: now, LockedUntil: now, TokenPrefix: "x:", Limit: 100}
	measure := func(from string) int64 {
		p.From = from
		query, args := postgres.ClaimSQL(drv, p)
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback() }() // EXPLAIN ANALYZE runs the UPDATE
		var plan string
		require.NoError(t, tx.QueryRowContext(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "+query, args...).Scan(&plan))
		var out []struct {
			Plan struct {
				Hit  int64 `json:"Shared Hit Blocks"`
				Read int64 `json:"Shared Read Blocks"`
			} `json:"Plan"`
		}
		require.NoError(t, json.Unmarshal([]byte(plan), &out))
		return out[0].Plan.Hit + out[0].Plan.Read
	}
	from := postgres.CursorFrom(drv)
	require.NotEmpty(t, from, "the outbox has a claim cursor after claiming")
	return measure(from), measure("")
}

// TestClaimCostStaysBoundedUnderAPinnedHorizon: while an idle transaction
// pins the MVCC horizon, the index entries of every message delivered
// since stay; a claim from the start of the claim index walks them all, a
// claim from the cursor does not. The claim the outbox runs between
// rescans touches at most twice the buffers it touches on an unpinned
// database.
func TestClaimCostStaysBoundedUnderAPinnedHorizon(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("delivers 100,000 messages")
	}
	testdb.URL(t, testdb.PostgresEnv) // skip (or fail under CI) here, not in the subtests, so nothing below compares zeros
	type cost struct{ bounded, rescan int64 }
	var clean, pinned cost
	t.Run("Clean", func(t *testing.T) { clean.bounded, clean.rescan = claimCost(t, false) })
	t.Run("Pinned", func(t *testing.T) { pinned.bounded, pinned.rescan = claimCost(t, true) })
	t.Logf("buffers per claim of 100 after %d deliveries: clean bounded %d, rescan %d; pinned bounded %d, rescan %d",
		horizonMessages, clean.bounded, clean.rescan, pinned.bounded, pinned.rescan)
	require.Greater(t, pinned.rescan, 5*pinned.bounded,
		fmt.Sprintf("the pin keeps the delivered messages' index entries (a rescan touches %d buffers): the test measures what it claims to", pinned.rescan))
	require.LessOrEqual(t, pinned.bounded, 2*clean.bounded, "the cursor keeps the claim's cost within 2x of a clean database's")
}
