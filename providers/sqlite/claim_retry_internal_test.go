package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
)

// faultDialect is SQLite's dialect with its claim replaced, so that a test
// can put injected failures in front of the real claim.
type faultDialect struct {
	sqliteDialect
	claim func(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams) ([]outboxsql.Record, error)
}

func (d faultDialect) Claim(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams) ([]outboxsql.Record, error) {
	return d.claim(ctx, db, q, p)
}

// TestClaimRunsAgainWhenChosenAsDeadlockVictim injects database errors in
// front of SQLite's real claim, on a real database: a deadlock on the root
// handle is claimed again (a few times at most), other errors and deadlocks
// inside the caller's transaction reach the caller at once, and nothing is
// claimed twice.
func TestClaimRunsAgainWhenChosenAsDeadlockVictim(t *testing.T) {
	t.Parallel()
	deadlock := &sqlbase.DBError{Kind: ports.ErrDeadlock, Retryable: true, Err: errors.New("injected deadlock")}
	busy := &sqlbase.DBError{Kind: ports.ErrBusy, Retryable: true, Err: errors.New("injected busy")}
	for _, tc := range []struct {
		name      string
		failures  []error // returned by the first calls, in order
		inTx      bool
		wrapped   bool // the outbox is bound to a type that wraps the root handle
		wantCalls int
		wantErr   error // nil: the message is claimed
	}{
		{"DeadlockTwiceThenClaims", []error{deadlock, deadlock}, false, false, 3, nil},
		{"DeadlockEveryTimeReachesTheCaller", []error{deadlock, deadlock, deadlock, deadlock, deadlock}, false, false, 4, ports.ErrDeadlock},
		{"OtherErrorsAreNotRunAgain", []error{busy}, false, false, 1, ports.ErrBusy},
		{"DeadlockInsideTheCallersTransactionIsReturned", []error{deadlock}, true, false, 1, ports.ErrDeadlock},
		{"DeadlockOnAnyOtherHandleIsReturned", []error{deadlock}, false, true, 1, ports.ErrDeadlock},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			drv, err := Open(ctx, "file:"+filepath.Join(t.TempDir(), "wharf.db"), wharf.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = drv.Close() })
			require.NoError(t, drv.Migrate(ctx))
			db := drv.DB()
			calls := 0
			d := faultDialect{claim: func(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams) ([]outboxsql.Record, error) {
				calls++
				if calls <= len(tc.failures) {
					return nil, tc.failures[calls-1]
				}
				return sqliteDialect{}.Claim(ctx, db, q, p)
			}}
			ob, err := outboxsql.New(db, outboxsql.Config{Logger: slog.New(slog.DiscardHandler)}, d)
			require.NoError(t, err)
			_, err = ob.Enqueue(ctx, ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`)})
			require.NoError(t, err)
			claim := func(ob *outboxsql.Outbox) ([]ports.ClaimedMessage, error) {
				return ob.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute})
			}
			var msgs []ports.ClaimedMessage
			if tc.inTx {
				tx, err := db.BeginTx(ctx, nil)
				require.NoError(t, err)
				msgs, err = claim(ob.WithDB(tx))
				require.ErrorIs(t, err, tc.wantErr)
				require.NoError(t, tx.Rollback())
			} else {
				bound := ob
				if tc.wrapped {
					bound = ob.WithDB(wrappedDB{db})
				}
				msgs, err = claim(bound)
				if tc.wantErr != nil {
					require.ErrorIs(t, err, tc.wantErr)
					require.Contains(t, err.Error(), "outbox claim")
				} else {
					require.NoError(t, err)
					require.Len(t, msgs, 1, "the message is claimed once")
				}
			}
			require.Equal(t, tc.wantCalls, calls, "claims run")
			if tc.wantErr != nil {
				require.Empty(t, msgs)
				again, err := claim(ob)
				require.NoError(t, err)
				require.Len(t, again, 1, "a failed claim leaves the message claimable")
			}
		})
	}
}

// wrappedDB is a handle type of the application's (e.g. one that adds
// tracing): the outbox cannot tell whether it is inside a transaction.
type wrappedDB struct{ *bun.DB }
