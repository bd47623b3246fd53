package sqlite

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/internal/outboxsql"
)

// Claim is one UPDATE ... WHERE id IN (eligible) RETURNING, the eligible
// scan forced onto the claim index (after ANALYZE the planner may prefer a
// full scan). SQLite needs no SKIP LOCKED: its write lock serialises
// claimers. It returns ClaimColumns: the lease, token and update time it
// set are known from p (see ScanClaimed).
func (sqliteDialect) Claim(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams) ([]outboxsql.Record, error) {
	query, args := claimQuery(q, p)
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return outboxsql.ScanClaimed(rows, p)
}

func claimQuery(q *outboxsql.Queries, p outboxsql.ClaimParams) (string, []any) {
	set, setArgs := q.ClaimSet(p, "? || id")
	eligible, eligArgs := q.Eligible(p, ` INDEXED BY "`+q.ClaimIndex()+`"`, "")
	return "UPDATE " + q.Names().Table + " SET " + set + " WHERE id IN (" + eligible + ") RETURNING " + outboxsql.ClaimColumns,
		append(setArgs, eligArgs...)
}

// Behind reads the claim index in claim order, as the claim does.
func (sqliteDialect) Behind(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams, before string) (string, error) {
	return outboxsql.QueryBehind(ctx, db, q, p, ` INDEXED BY "`+q.ClaimIndex()+`"`, before)
}

// Settle runs the statement checked by its row count in a transaction of
// its own (the usual case: every claim held); when claims were lost it
// runs it again with RETURNING, which names the claims it applied.
func (sqliteDialect) Settle(ctx context.Context, db bun.IDB, q *outboxsql.Queries, s outboxsql.Settlement) ([]string, error) {
	return outboxsql.SettleCounted(ctx, db, q, s, outboxsql.Heads{}, func(ctx context.Context) ([]string, error) {
		return outboxsql.SettleReturning(ctx, db, q, s)
	})
}
