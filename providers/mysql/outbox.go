package mysql

import (
	"context"
	"database/sql"
	"errors"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/providers/internal/outboxsql"
)

// OutboxOptions configures NewOutbox: TableName (default
// "outbox_messages", or "database.table"), Now (test clock),
// DefaultMaxAttempts (default 10), Logger.
type OutboxOptions = outboxsql.Options

// Outbox implements ports.Outbox and ports.OutboxAdmin on MySQL and
// MariaDB. Bind it to a transaction with WithDB so enqueued messages commit
// with the business write; WithDB is cheap (the SQL is built once).
type Outbox = outboxsql.Outbox

// NewOutbox returns an outbox on db. An invalid table name is an error
// matching ports.ErrInvalidArgument.
func NewOutbox(db bun.IDB, opts OutboxOptions) (*Outbox, error) {
	return outboxsql.New(db, opts, outboxDialect)
}

// OutboxSetupStatements returns the idempotent CREATE TABLE statement for
// opts (its indexes are declared inside it: MySQL has no CREATE INDEX IF NOT
// EXISTS).
func OutboxSetupStatements(opts OutboxOptions) ([]string, error) {
	return outboxsql.SetupStatements(opts, outboxDialect)
}

// Index names. MySQL index names are local to their table, so they need no
// table prefix (which could push them past MySQL's 64-character limit).
const (
	claimIndex = "claim_idx"
	keyIndex   = "key_idx"
)

// pkHint pins a statement that takes a list of IDs to the primary key.
const pkHint = " FORCE INDEX (PRIMARY)"

func quote(s string) string { return "`" + s + "`" }

// claimTx is the claim's transaction: READ COMMITTED, so the locking scan
// takes no gap locks (which would block producers' INSERTs) and unlocks the
// rows it examines but does not return.
var claimTx = &sql.TxOptions{Isolation: sql.LevelReadCommitted}

var outboxDialect = &outboxsql.Dialect{
	Name:      "mysql",
	Quote:     quote,
	Translate: TranslateError,
	// MySQL has no UPDATE/DELETE ... RETURNING (MariaDB has DELETE
	// RETURNING, MySQL has neither): Complete and Release use a locking read
	// and the statement in one transaction.
	Returning: false,
	// With stale statistics (a young or fast-changing table) InnoDB may
	// prefer a full scan to a few primary-key lookups, and a locking full
	// scan locks every row: pin the statements that take a list of IDs to
	// the primary key.
	IDHint: pkHint,
	Setup: func(n outboxsql.Names) []string {
		// id, topic, ordering_key and claim_token are VARBINARY: compared
		// byte for byte (the order of Go's strings.Compare and of SQLite),
		// where the utf8mb4_bin collation would ignore trailing spaces
		// ("k" = "k "). 1020 bytes hold 255 characters of 4-byte UTF-8.
		return []string{
			"CREATE TABLE IF NOT EXISTS " + n.Table + ` (
	id VARBINARY(1020) NOT NULL,
	kind VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	topic VARBINARY(1020) NOT NULL,
	ordering_key VARBINARY(1020) NULL,
	payload LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	headers LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	attempts INT NOT NULL DEFAULT 0,
	max_attempts INT NOT NULL,
	available_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	locked_until VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NULL,
	claim_token VARBINARY(1100) NULL,
	last_error LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	created_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	updated_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	PRIMARY KEY (id),
	INDEX ` + claimIndex + ` (status, available_at, id, locked_until),
	INDEX ` + keyIndex + ` (ordering_key, status, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
		}
	},
	Claim: claim,
}

// claim runs the claim in one short READ COMMITTED transaction (a savepoint
// inside the caller's transaction when the outbox is bound to one; the
// isolation is then the caller's): find where the claimable rows begin (see
// headQuery), lock up to Limit eligible rows from there with FOR UPDATE SKIP
// LOCKED, reading what the claim returns, and update them. The rows read
// under the lock are what the UPDATE changes, so the claimed rows are
// derived from them (ApplyClaimSet) instead of read back.
func claim(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams) ([]outboxsql.Record, error) {
	var recs []outboxsql.Record
	inTx := outboxsql.InTx(db)
	err := db.RunInTx(ctx, claimTx, func(ctx context.Context, tx bun.Tx) error {
		var from string
		if !inTx {
			err := tx.QueryRowContext(ctx, headQuery(q), p.Now, p.Now).Scan(&from)
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			if err != nil {
				return err
			}
		}
		query, args := q.EligibleRows(p, outboxsql.ClaimColumns, " FORCE INDEX ("+claimIndex+")", " FOR UPDATE SKIP LOCKED", from)
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

// ClaimQuery renders the claim's first statement, the one that chooses the
// messages: the shared eligibility query, in claim order, with FOR UPDATE
// SKIP LOCKED so that concurrent claimers pass over each other's rows
// instead of waiting. The eligibility scan is pinned to the claim index
// (status, available_at, id, locked_until): it returns rows in claim order,
// so InnoDB stops after Limit matches, and it rejects leased rows by an
// index condition, without locking their clustered records (but with a lock
// on their index records until the transaction ends). The claim itself runs
// this scan from headQuery's row on and reads ClaimColumns with it.
func ClaimQuery(q *outboxsql.Queries, p outboxsql.ClaimParams) (string, []any) {
	return q.Eligible(p, " FORCE INDEX ("+claimIndex+")", " FOR UPDATE SKIP LOCKED")
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
// a later claim. The claim's caller transaction, when there is one, may
// read an older snapshot; claims inside one do not use it.
func headQuery(q *outboxsql.Queries) string {
	return "SELECT available_at FROM " + q.Names().Table + " FORCE INDEX (" + claimIndex + ")" +
		" WHERE status = 'pending' AND available_at <= ? AND (locked_until IS NULL OR locked_until <= ?)" +
		" ORDER BY available_at, id LIMIT 1"
}
