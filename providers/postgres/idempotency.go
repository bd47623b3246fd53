package postgres

import (
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/providers/internal/idemsql"
)

// IdempotencyOptions configures NewIdempotency: TableName (default
// "idempotency_records", optionally schema-qualified), Now (test clock), TTL
// (default 24h), Lease (default 1m), Logger.
type IdempotencyOptions = idemsql.Options

// Idempotency implements ports.Idempotency on PostgreSQL. Bind it to a
// transaction with WithDB so the record commits with the business write.
//
// Reserve inserts with ON CONFLICT (storage_key) DO NOTHING and reads the
// winning record with a plain SELECT. Under READ COMMITTED (PostgreSQL's
// default) the INSERT waits for a concurrent inserter to finish and the
// SELECT then sees its committed record. Under REPEATABLE READ or
// SERIALIZABLE no locking read is needed either: PostgreSQL raises a
// serialization failure (40001, retryable ports.ErrSerialization) when the
// conflicting record is not visible to the transaction's snapshot, and
// when a fenced takeover, Complete or Fail meets a record changed since the
// snapshot, so the unit of work re-runs with a fresh snapshot. At worst a
// snapshot reports InProgress for a reservation completed after it began,
// which the caller handles like any InProgress (HTTP 409, retry later). A
// FOR UPDATE would instead serialise every concurrent Replay of one key.
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
	Name:         "postgres",
	Quote:        quote,
	Translate:    TranslateError,
	InsertIgnore: "ON CONFLICT (storage_key) DO NOTHING",
	LockingRead:  "",
	Setup: func(n idemsql.Names) []string {
		return []string{
			"CREATE TABLE IF NOT EXISTS " + n.Table + ` (
	storage_key TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	namespace TEXT NOT NULL,
	idem_key TEXT NOT NULL,
	scope TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	status TEXT NOT NULL,
	token TEXT COLLATE "C" NOT NULL,
	result TEXT,
	locked_until TEXT COLLATE "C",
	expires_at TEXT COLLATE "C" NOT NULL,
	created_at TEXT COLLATE "C" NOT NULL,
	updated_at TEXT COLLATE "C" NOT NULL
)`,
			"CREATE INDEX IF NOT EXISTS " + quote(n.Base+"_expires_idx") + " ON " + n.Table + " (expires_at)",
		}
	},
}
