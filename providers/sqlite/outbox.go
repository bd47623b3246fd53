package sqlite

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/providers/internal/outboxsql"
)

// OutboxOptions configures NewOutbox: TableName (default
// "outbox_messages"), Now (test clock), DefaultMaxAttempts (default 10),
// Logger.
type OutboxOptions = outboxsql.Options

// Outbox implements ports.Outbox and ports.OutboxAdmin on SQLite. Bind it to
// a transaction with WithDB so enqueued messages commit with the business
// write; WithDB is cheap (the SQL is built once).
type Outbox = outboxsql.Outbox

// NewOutbox returns an outbox on db. An invalid table name is an error
// matching ports.ErrInvalidArgument.
func NewOutbox(db bun.IDB, opts OutboxOptions) (*Outbox, error) {
	return outboxsql.New(db, opts, outboxDialect)
}

// OutboxSetupStatements returns the idempotent CREATE TABLE / INDEX
// statements for opts.
func OutboxSetupStatements(opts OutboxOptions) ([]string, error) {
	return outboxsql.SetupStatements(opts, outboxDialect)
}

func quote(s string) string { return `"` + s + `"` }

var outboxDialect = &outboxsql.Dialect{
	Name:      "sqlite",
	Quote:     quote,
	Translate: TranslateError,
	Returning: true,
	WriteGate: writeGate,
	Setup: func(n outboxsql.Names) []string {
		return []string{
			"CREATE TABLE IF NOT EXISTS " + n.Table + ` (
	id TEXT NOT NULL PRIMARY KEY,
	kind TEXT NOT NULL,
	topic TEXT NOT NULL,
	ordering_key TEXT,
	payload TEXT NOT NULL,
	headers TEXT,
	status TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	max_attempts INTEGER NOT NULL,
	available_at TEXT NOT NULL,
	locked_until TEXT,
	claim_token TEXT,
	last_error TEXT,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
)`,
			"CREATE INDEX IF NOT EXISTS " + n.Schema + quote(n.ClaimIndex) + " ON " + quote(n.Base) +
				" (available_at, id) WHERE status = 'pending'",
			"CREATE INDEX IF NOT EXISTS " + n.Schema + quote(n.KeyIndex) + " ON " + quote(n.Base) +
				" (ordering_key, id) WHERE status = 'pending' AND ordering_key IS NOT NULL",
		}
	},
	Claim: func(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams) ([]outboxsql.Record, error) {
		query, args := ClaimQuery(q, p)
		rows, err := db.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		return outboxsql.ScanRecordsN(rows, p.Limit)
	},
}

// ClaimQuery renders SQLite's claim: one UPDATE ... WHERE id IN (eligible)
// RETURNING, with the eligible scan forced onto the claim index (after
// ANALYZE the planner may otherwise prefer a full scan).
func ClaimQuery(q *outboxsql.Queries, p outboxsql.ClaimParams) (string, []any) {
	set, setArgs := q.ClaimSet(p, "? || id")
	eligible, eligArgs := q.Eligible(p, " INDEXED BY "+quote(q.Names().ClaimIndex), "")
	return "UPDATE " + q.Names().Table + " SET " + set + " WHERE id IN (" + eligible + ") RETURNING " + outboxsql.Columns,
		append(setArgs, eligArgs...)
}
