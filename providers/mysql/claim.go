package mysql

import (
	"context"
	"database/sql"
	"errors"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/sqlbase"
)

// claimHint pins the eligibility scan to the claim index (status,
// available_at, id, locked_until): it returns rows in claim order, so InnoDB
// stops after Limit matches, and rejects leased rows by an index condition
// without locking their clustered records.
const claimHint = " FORCE INDEX (" + claimIndex + ")"

// claimTx is the claim's transaction: READ COMMITTED, so the locking scan
// takes no gap locks (which would block producers' INSERTs) and unlocks the
// rows it examines but does not return.
var claimTx = &sql.TxOptions{Isolation: sql.LevelReadCommitted}

// Claim runs the claim in one short READ COMMITTED transaction (a savepoint
// inside the caller's transaction when the outbox is bound to one; the
// isolation is then the caller's): find where the claimable rows begin (see
// headQuery), lock up to Limit eligible rows from there with FOR UPDATE SKIP
// LOCKED, reading what the claim returns, and update them. The rows read
// under the lock are what the UPDATE changes, so the claimed rows are
// derived from them (ApplyClaimSet) instead of read back.
func (*mysqlDialect) Claim(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams) ([]outboxsql.Record, error) {
	var recs []outboxsql.Record
	inTx := sqlbase.InTx(db)
	err := db.RunInTx(ctx, claimTx, func(ctx context.Context, tx bun.Tx) error {
		from := p.From
		if !inTx {
			head, args := headQuery(q, p)
			err := tx.QueryRowContext(ctx, head, args...).Scan(&from)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
		}
		query, args := q.EligibleRows(p, outboxsql.ClaimColumns, claimHint, " FOR UPDATE SKIP LOCKED", from)
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		got, err := outboxsql.ScanClaimed(rows, p)
		if err != nil || len(got) == 0 {
			return err
		}
		ids := make([]string, len(got))
		for i := range got {
			ids[i] = got[i].ID
		}
		// MySQL evaluates the assignments left to right, each seeing the
		// values assigned before it. ClaimSet's CASEs read only attempts and
		// max_attempts, and assigns attempts last, so every CASE sees the
		// row's old attempts.
		set, setArgs := q.ClaimSet(p, "CONCAT(?, id)")
		if _, err := tx.ExecContext(ctx, "UPDATE "+q.Names().Table+pkHint+" SET "+set+" WHERE id IN (?)", append(setArgs, bun.In(ids))...); err != nil {
			return err
		}
		outboxsql.ApplyClaimSet(got)
		recs = got
		return nil
	})
	if err != nil {
		return nil, err
	}
	return recs, nil
}

// headQuery returns the first claimable row's available_at, read without
// locks from the claim index alone.
//
// Leased messages keep their place at the head of the claim index (status,
// available_at, id, locked_until) until they are completed: with several
// relays, each holding up to Concurrency leased messages, a claim's locking
// scan would pass hundreds of them, and InnoDB locks every index record the
// scan examines (before the pushed-down lease condition rejects it) until
// the claim commits. The relays' DELETEs of those very messages then wait
// for the claims. Starting the locking scan at the first row that a plain
// read finds claimable keeps the leased rows out of it (all but those
// enqueued at the same microsecond); the plain read passes them without
// locking anything. The scan starts at that available_at, not at the row
// itself: see EligibleRows for why the bound is one column.
//
// The position is only where the scan starts: a row before it that became
// claimable in the meantime (a lease that expired, a release) is claimed by
// a later claim. The read, too, starts at the claim cursor (p.From). The
// claim's caller transaction, when there is one, may read an older
// snapshot; claims inside one do not use it.
func headQuery(q *outboxsql.Queries, p outboxsql.ClaimParams) (string, []any) {
	query := "SELECT available_at FROM " + q.Names().Table + claimHint +
		" WHERE status = 'pending' AND available_at <= ? AND (locked_until IS NULL OR locked_until <= ?)"
	args := []any{p.Now, p.Now}
	if p.From != "" {
		query += " AND available_at >= ?"
		args = append(args, p.From)
	}
	return query + " ORDER BY available_at, id LIMIT 1", args
}

// Behind reads the claim index, as the claim does, without locking
// anything.
func (*mysqlDialect) Behind(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams, before string) (string, error) {
	return outboxsql.QueryBehind(ctx, db, q, p, claimHint, before)
}

// Settle first tries the statement alone, in a transaction (a savepoint
// when already in one), committed when it matched every claim, the usual
// case (outboxsql.SettleCounted). MySQL has no UPDATE or DELETE ...
// RETURNING, so when some claims were lost it finds the claims still held
// with a locking read and applies the change to exactly those, in one
// transaction.
func (*mysqlDialect) Settle(ctx context.Context, db bun.IDB, q *outboxsql.Queries, s outboxsql.Settlement) ([]string, error) {
	return outboxsql.SettleCounted(ctx, db, q, s, settleHeads(q), func(ctx context.Context) ([]string, error) {
		var held map[string]struct{}
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			rows, err := tx.QueryContext(ctx, "SELECT id FROM "+q.Names().Table+pkHint+" WHERE id IN (?) AND claim_token IN (?) FOR UPDATE",
				bun.In(s.IDs), bun.In(s.Tokens))
			if err != nil {
				return err
			}
			if held, err = outboxsql.ScanIDSet(rows); err != nil || len(held) == 0 {
				return err
			}
			sub := s
			sub.IDs = make([]string, 0, len(held))
			for id := range held {
				sub.IDs = append(sub.IDs, id)
			}
			query, args := q.SettleSQL(sub, settleHeads(q), false)
			_, err = tx.ExecContext(ctx, query, args...)
			return err
		})
		if err != nil {
			return nil, err
		}
		return s.Lost(held), nil
	})
}

// settleHeads pin the settlement's statements to the primary key (pkHint);
// DELETE takes a hint only in its multiple-table form.
func settleHeads(q *outboxsql.Queries) outboxsql.Heads {
	t := q.Names().Table
	return outboxsql.Heads{Update: "UPDATE " + t + pkHint, Delete: "DELETE " + t + " FROM " + t + pkHint}
}
