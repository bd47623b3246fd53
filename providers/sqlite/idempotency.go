package sqlite

import (
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/providers/internal/idemsql"
)

// IdempotencyOptions configures NewIdempotency: TableName (default
// "idempotency_records"), Now (test clock), TTL (default 24h), Lease
// (default 1m), Logger.
type IdempotencyOptions = idemsql.Options

// Idempotency implements ports.Idempotency on SQLite. Bind it to a
// transaction with WithDB so the record commits with the business write.
type Idempotency = idemsql.Store

// NewIdempotency returns an idempotency store on db. An invalid table name
// is an error matching ports.ErrInvalidArgument.
func NewIdempotency(db bun.IDB, opts IdempotencyOptions) (*Idempotency, error) {
	return idemsql.New(db, opts, idemDialect)
}

// IdempotencySetupStatements returns the idempotent CREATE TABLE / INDEX
// statements for opts.
func IdempotencySetupStatements(opts IdempotencyOptions) ([]string, error) {
	return idemsql.SetupStatements(opts, idemDialect)
}

var idemDialect = &idemsql.Dialect{
	Name:         "sqlite",
	Quote:        quote,
	Translate:    TranslateError,
	InsertIgnore: "ON CONFLICT (storage_key) DO NOTHING",
	WriteGate:    writeGate,
	Setup: func(n idemsql.Names) []string {
		return []string{
			"CREATE TABLE IF NOT EXISTS " + n.Table + ` (
	storage_key TEXT NOT NULL PRIMARY KEY,
	namespace TEXT NOT NULL,
	idem_key TEXT NOT NULL,
	scope TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	status TEXT NOT NULL,
	token TEXT NOT NULL,
	result TEXT,
	locked_until TEXT,
	expires_at TEXT NOT NULL,
	created_at TEXT NOT NULL,
	updated_at TEXT NOT NULL
)`,
			"CREATE INDEX IF NOT EXISTS " + n.Schema + quote(n.Base+"_expires_idx") + " ON " + quote(n.Base) + " (expires_at)",
		}
	},
}
