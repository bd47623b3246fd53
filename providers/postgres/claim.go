package postgres

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/internal/outboxsql"
)

// Claim is one statement:
//
//	UPDATE t SET <claim> WHERE id = ANY(ARRAY(
//	    SELECT c.id FROM t AS c CROSS JOIN generate_series(1, (SELECT 1)) AS rows_hint
//	    WHERE <eligible> ORDER BY c.available_at, c.id
//	    LIMIT n FOR UPDATE OF c SKIP LOCKED)) RETURNING ...
//
// The eligible rows are found by one scan of the partial claim index in
// claim order, skipping (never waiting for) rows that concurrent claimers
// hold. ARRAY(subquery) makes that scan an InitPlan that runs once per
// statement, so no more than n rows are locked or updated, and its result
// reaches the UPDATE as one array matched through the primary key whatever
// n is (an IN (subquery) join is sized by n, and from about a thousand rows
// the planner scans the whole table instead). See claimRowsHint for the
// cross join.
func (*pgDialect) Claim(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams) ([]outboxsql.Record, error) {
	query, args := claimQuery(q, p, outboxsql.ClaimColumns)
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return outboxsql.ScanClaimed(rows, p)
}

// Behind reads the claim index in claim order, as the claim does, without
// locking anything.
func (*pgDialect) Behind(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams, before string) (string, error) {
	return outboxsql.QueryBehind(ctx, db, q, p, claimRowsHint, before)
}

func claimQuery(q *outboxsql.Queries, p outboxsql.ClaimParams, returning string) (string, []any) {
	set, setArgs := q.ClaimSet(p, "? || id")
	eligible, eligArgs := q.Eligible(p, claimRowsHint, " FOR UPDATE OF c SKIP LOCKED")
	return "UPDATE " + q.Names().Table + " SET " + set + " WHERE id = ANY(ARRAY(" + eligible + ")) RETURNING " + returning,
		append(setArgs, eligArgs...)
}

// claimRowsHint follows the claim subquery's table reference. The cross join
// adds exactly one row per candidate, so it changes no result, but the
// planner counts generate_series as 1000 rows: the candidates are estimated
// at a thousand times what the WHERE clause leaves. On a table without
// statistics (just after Migrate or a bulk load) the default selectivities
// estimate one or two eligible rows, and a LIMIT at or above the estimate
// makes a bitmap scan plus a sort of the whole backlog look cheaper than
// the ordered index scan that stops after n rows; the hint keeps the
// ordered scan. FOR UPDATE OF c keeps the lock on the outbox rows only.
// (Measurements: BENCHMARKS.md, tuning step 11.)
const claimRowsHint = " CROSS JOIN generate_series(1, (SELECT 1)) AS rows_hint"

// Settle passes the ID and token lists as one text[] value each and
// returns only the claims it could not apply, so the usual batch, all held,
// comes back empty:
//
//	WITH l AS MATERIALIZED (SELECT * FROM unnest(ids, tokens) WITH ORDINALITY AS l(id, token, n)),
//	done AS (DELETE ... WHERE id = ANY(ARRAY(SELECT id FROM l))
//	    AND claim_token = ANY(ARRAY(SELECT token FROM l)) RETURNING id)
//	SELECT l.id FROM l WHERE NOT EXISTS (SELECT 1 FROM done WHERE done.id = l.id) ORDER BY l.n
//
// ARRAY(subquery), as in the claim, reaches the primary key as one array
// whatever the batch size; a token embeds its message's ID, so the two
// lists match exactly the given claims.
func (*pgDialect) Settle(ctx context.Context, db bun.IDB, q *outboxsql.Queries, s outboxsql.Settlement) ([]string, error) {
	const list = "WITH l AS MATERIALIZED (SELECT * FROM unnest(?::text[], ?::text[]) WITH ORDINALITY AS l(id, token, n)), done AS ("
	const fence = " WHERE id = ANY(ARRAY(SELECT id FROM l)) AND claim_token = ANY(ARRAY(SELECT token FROM l))"
	const lost = " RETURNING id) SELECT l.id FROM l WHERE NOT EXISTS (SELECT 1 FROM done WHERE done.id = l.id) ORDER BY l.n"
	t := q.Names().Table
	query := list + "DELETE FROM " + t + fence + lost
	args := []any{textArray(s.IDs), textArray(s.Tokens)}
	if s.Release {
		query = list + "UPDATE " + t + " SET attempts = attempts - 1, locked_until = NULL, claim_token = NULL, updated_at = ?" +
			fence + " AND status = 'pending'" + lost
		args = append(args, s.Now)
	}
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return outboxsql.ScanIDList(rows)
}

// Insert writes the rows and notifies listeners in one statement:
//
//	WITH ins AS (INSERT INTO t (...) SELECT * FROM unnest(...)) SELECT pg_notify(channel, topics)
//
// The notification is delivered when the transaction commits, and never
// after a rollback; one statement needs no transaction of its own on the
// pool. Several rows travel as one array per column (see insertArrays).
func (*pgDialect) Insert(ctx context.Context, db bun.IDB, q *outboxsql.Queries, rows [][]any, topics []string) error {
	var ins string
	var args []any
	if len(rows) > 1 {
		ins, args = insertArrays(q.Names().Table, rows)
	} else {
		ins, args = q.InsertValues(rows)
	}
	args = append(args, NotifyChannel(q.Names().Raw), notifyPayload(topics))
	_, err := db.ExecContext(ctx, "WITH ins AS ("+ins+") SELECT pg_notify(?, ?)", args...)
	return err
}
