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

// Settle passes the ID and token lists as one text[] value each and reads
// back the IDs of the claims it applied:
//
//	DELETE FROM t WHERE id = ANY(ids) AND claim_token = ANY(tokens) RETURNING id
//
// (Release: the UPDATE). A token embeds its message's ID, so the two
// lists match exactly the given claims; the claims missing from what comes
// back are the lost ones. The statement alone costs the server less than
// wrapping it in a CTE that returns only the lost claims (the form before
// tuning step 22, BENCHMARKS.md), more than reading 100 IDs costs the client.
func (*pgDialect) Settle(ctx context.Context, db bun.IDB, q *outboxsql.Queries, s outboxsql.Settlement) ([]string, error) {
	const fence = " WHERE id = ANY(?::text[]) AND claim_token = ANY(?::text[])"
	t := q.Names().Table
	query := "DELETE FROM " + t + fence + " RETURNING id"
	args := []any{textArray(s.IDs), textArray(s.Tokens)}
	if s.Release {
		query = "UPDATE " + t + " SET attempts = attempts - 1, locked_until = NULL, claim_token = NULL, updated_at = ?" +
			fence + " AND status = 'pending' RETURNING id"
		args = []any{s.Now, textArray(s.IDs), textArray(s.Tokens)}
	}
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	applied, err := outboxsql.ScanIDList(rows)
	if err != nil || len(applied) == len(s.IDs) {
		return nil, err
	}
	set := make(map[string]struct{}, len(applied))
	for _, id := range applied {
		set[id] = struct{}{}
	}
	return s.Lost(set), nil
}

// Insert writes the rows and notifies listeners in one statement:
//
//	WITH ins AS (INSERT INTO t (...) SELECT * FROM unnest(...)) SELECT pg_notify(channel, topics)
//
// The notification is delivered when the transaction commits, and never
// after a rollback; one statement needs no transaction of its own on the
// pool. Several rows travel as one array per column (see insertArrays).
// With topics nil (a unit of work's transaction) the INSERT is alone: the
// outbox calls Notify after the commit.
func (*pgDialect) Insert(ctx context.Context, db bun.IDB, q *outboxsql.Queries, rows [][]any, topics []string) error {
	var ins string
	var args []any
	if len(rows) > 1 {
		ins, args = insertArrays(q.Names().Table, rows)
	} else {
		ins, args = q.InsertValues(rows)
	}
	if topics == nil {
		_, err := db.ExecContext(ctx, ins, args...)
		return err
	}
	args = append(args, NotifyChannel(q.Names().Raw), notifyPayload(topics))
	_, err := db.ExecContext(ctx, "WITH ins AS ("+ins+") SELECT pg_notify(?, ?)", args...)
	return err
}

// Notify sends the notification of commits whose INSERTs left it out (see
// Insert), with an empty payload (it stands for any number of commits), in
// a transaction of its own that does not wait for its commit record to
// reach the disk: it changes no data, and the commits it announces are
// durable already. NOTIFY serialises the commits of the transactions that
// send one (PostgreSQL takes a lock on the notification queue from before
// their commit record is flushed until they end), which is why the outbox
// sends one for many commits instead of one in each.
func (*pgDialect) Notify(ctx context.Context, db bun.IDB, q *outboxsql.Queries) error {
	_, err := db.ExecContext(ctx, "SELECT set_config('synchronous_commit', 'off', true), pg_notify(?, '')", NotifyChannel(q.Names().Raw))
	return err
}
