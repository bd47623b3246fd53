package outboxsql

import (
	"context"
	"database/sql"
	"errors"

	"github.com/uptrace/bun"
)

// SettleReturning is the settlement of a database with DELETE and UPDATE
// ... RETURNING (SQLite): one statement, which returns the rows it
// changed.
func SettleReturning(ctx context.Context, db bun.IDB, q *Queries, s Settlement) ([]string, error) {
	query, args := q.SettleSQL(s, Heads{}, true)
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	done, err := ScanIDSet(rows)
	if err != nil {
		return nil, err
	}
	return s.Lost(done), nil
}

// SettleCounted is the settlement that needs no RETURNING in the usual
// case: the statement (opened by h, as SettleSQL's) runs alone in a transaction (a
// savepoint when db is one), committed when its row count equals the
// number of claims, which is when every claim was held. A short count
// rolls it back, since which claims matched is unknown, and lost runs
// instead: it applies s to the claims still held and returns the others.
// Reading the IDs of a RETURNING costs more than the transaction's BEGIN
// and COMMIT (BENCHMARKS.md).
func SettleCounted(ctx context.Context, db bun.IDB, q *Queries, s Settlement, h Heads,
	lost func(ctx context.Context) ([]string, error)) ([]string, error) {
	query, args := q.SettleSQL(s, h, false)
	err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n != int64(len(s.IDs)) {
			return errShort // roll back: which claims matched is unknown
		}
		return nil
	})
	if !errors.Is(err, errShort) {
		return nil, err
	}
	return lost(ctx)
}

// errShort rolls back a settlement that matched fewer rows than claims.
var errShort = errors.New("fewer rows than claims")

// QueryBehind runs q.Behind(p, hint, before) on db.
func QueryBehind(ctx context.Context, db bun.IDB, q *Queries, p ClaimParams, hint, before string) (string, error) {
	query, args := q.Behind(p, hint, before)
	var pos string
	err := db.QueryRowContext(ctx, query, args...).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return pos, err
}

// ScanIDSet reads a column of IDs into a set and closes rows.
func ScanIDSet(rows *sql.Rows) (map[string]struct{}, error) {
	defer rows.Close()
	out := make(map[string]struct{})
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = struct{}{}
	}
	return out, rows.Err()
}

// ScanIDList reads a column of IDs in order and closes rows.
func ScanIDList(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// InsertValues is the insert of a dialect without a faster form: one
// multi-row VALUES list.
func InsertValues(ctx context.Context, db bun.IDB, q *Queries, rows [][]any) error {
	query, args := q.InsertValues(rows)
	_, err := db.ExecContext(ctx, query, args...)
	return err
}
