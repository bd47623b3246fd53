package mysql_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/mysql"
)

const horizonMessages = 50_000

// claimPages delivers horizonMessages messages through a fresh outbox at
// 500 a second of its clock (50 every 100 ms), with InnoDB's purge held back by a consistent
// snapshot of another session when pinned, then enqueues a few more and
// returns the InnoDB pages that the next claim's statements access, from
// the claim cursor: the head read (no locks) and the locking read.
func claimPages(t *testing.T, pinned bool) (head, locking int64) {
	t.Helper()
	ctx := context.Background()
	clock := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	drv := newTestDriver(t, wharf.Options{Now: func() time.Time { return clock }})
	require.NoError(t, drv.Migrate(ctx))
	db := drv.DB()
	if pinned {
		conn, err := db.Conn(ctx)
		require.NoError(t, err)
		_, err = conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT")
		require.NoError(t, err)
		var n int
		require.NoError(t, conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables").Scan(&n))
		t.Cleanup(func() { _, _ = conn.ExecContext(context.Background(), "ROLLBACK"); _ = conn.Close() })
	}
	ob := drv.Outbox()
	msgs := make([]ports.OutboxMessage, 50)
	for i := range msgs {
		msgs[i] = ports.OutboxMessage{Topic: "h", Payload: json.RawMessage(`{}`)}
	}
	for delivered := 0; delivered < horizonMessages; {
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
	measure := func(from string) (int64, int64) {
		p := outboxsql.ClaimParams{Now: now, LockedUntil: now, TokenPrefix: "x:", Limit: 100, From: from}
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback() }()
		analyze := func(query string, args ...any) int64 {
			var doc string
			require.NoError(t, tx.QueryRowContext(ctx, "ANALYZE FORMAT=JSON "+query, args...).Scan(&doc))
			var plan struct {
				Query struct {
					Loop []struct {
						Table struct {
							Access string `json:"access_type"`
							Stats  struct {
								Pages int64 `json:"pages_accessed"`
							} `json:"r_engine_stats"`
						} `json:"table"`
					} `json:"nested_loop"`
				} `json:"query_block"`
			}
			require.NoError(t, json.Unmarshal([]byte(doc), &plan), doc)
			require.Len(t, plan.Query.Loop, 1, doc)
			tbl := plan.Query.Loop[0].Table
			require.Positive(t, tbl.Stats.Pages, doc)
			return tbl.Stats.Pages
		}
		head, headArgs := mysql.HeadSQL(drv, p)
		pages := analyze(head, headArgs...)
		var start string
		require.NoError(t, tx.QueryRowContext(ctx, head, headArgs...).Scan(&start))
		lock, lockArgs := mysql.ClaimSQL(drv, p, "c.id", start)
		return pages, analyze(lock, lockArgs...)
	}
	from := mysql.CursorFrom(drv)
	require.NotEmpty(t, from)
	return measure(from)
}

// TestClaimCostStaysBoundedUnderAPinnedHorizon is PostgreSQL's test on
// MariaDB: a consistent snapshot held by another session keeps InnoDB from
// purging the delivered messages' records, and the claim's locking read —
// the statement that holds locks — still accesses at most four times the
// pages it accesses on a clean database. The head read before it takes no locks;
// under the pin MariaDB's optimizer reads it by ref on status from the
// start of the pending records (its statistics count the unpurged ones),
// whatever the cursor's bound: its pages are logged, not bounded
// (docs/architecture.md, "MariaDB under a pinned snapshot").
func TestClaimCostStaysBoundedUnderAPinnedHorizon(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("delivers 100,000 messages")
	}
	testdb.URL(t, testdb.MySQLEnv) // skip (or fail under CI) here, not in the subtests, so nothing below compares zeros
	var cleanHead, cleanLock, pinnedHead, pinnedLock int64
	t.Run("Clean", func(t *testing.T) { cleanHead, cleanLock = claimPages(t, false) })
	t.Run("Pinned", func(t *testing.T) { pinnedHead, pinnedLock = claimPages(t, true) })
	t.Logf("InnoDB pages per claim after %d deliveries: clean head %d, locking %d; pinned head %d, locking %d",
		horizonMessages, cleanHead, cleanLock, pinnedHead, pinnedLock)
	require.Positive(t, cleanLock, "the clean claim was measured")
	// Alone on the server the pinned locking read accesses 1.5x the clean
	// one's pages (153 vs 102); with the rest of the test suite churning the
	// same server (whose undo the pin also keeps), 3x has been seen. A scan
	// that walked the unpurged records would read thousands.
	require.LessOrEqual(t, pinnedLock, 4*cleanLock, "the claim's locking read stays within 4x of a clean database's")
}
