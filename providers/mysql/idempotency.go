package mysql

import (
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/providers/internal/idemsql"
)

// IdempotencyOptions configures NewIdempotency: TableName (default
// "idempotency_records", or "database.table"), Now (test clock), TTL
// (default 24h), Lease (default 1m), Logger.
type IdempotencyOptions = idemsql.Options

// Idempotency implements ports.Idempotency on MySQL and MariaDB. Bind it to
// a transaction with WithDB so the record commits with the business write.
//
// Reserve inserts with INSERT IGNORE (a duplicate key inserts nothing and
// reports 0 rows) and reads an existing record with a locking read (LOCK IN
// SHARE MODE), which returns the latest committed version even inside a
// REPEATABLE READ transaction whose snapshot predates it. Namespace, key,
// scope and fingerprint are checked to be at most 255 characters before
// anything is written, so nothing is ever truncated, whatever the server's
// sql_mode.
type Idempotency = idemsql.Store

// NewIdempotency returns an idempotency store on db. An invalid table name
// is an error matching ports.ErrInvalidArgument.
func NewIdempotency(db bun.IDB, opts IdempotencyOptions) (*Idempotency, error) {
	return idemsql.New(db, opts, idemDialect)
}

// IdempotencySetupStatements returns the idempotent CREATE TABLE statement
// for opts (its index is declared inside it).
func IdempotencySetupStatements(opts IdempotencyOptions) ([]string, error) {
	return idemsql.SetupStatements(opts, idemDialect)
}

var idemDialect = &idemsql.Dialect{
	Name:      "mysql",
	Quote:     quote,
	Translate: TranslateError,
	// Not ON DUPLICATE KEY UPDATE: with clientFoundRows its no-op reports 1
	// row, indistinguishable from an insert. The values INSERT IGNORE could
	// otherwise adjust are all length-checked (or fixed-length) in Go.
	InsertVerb: "INSERT IGNORE",
	// A shared lock: INSERT IGNORE already holds one on the duplicate row,
	// so concurrent reservers of one key inside transactions can all read it
	// without deadlocking (upgrading to FOR UPDATE would make them wait for
	// each other's shared locks).
	LockingRead: " LOCK IN SHARE MODE",
	Setup: func(n idemsql.Names) []string {
		return []string{
			"CREATE TABLE IF NOT EXISTS " + n.Table + ` (
	storage_key VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	namespace VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	idem_key VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	scope VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	fingerprint VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
	status VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	token VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	result LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
	locked_until VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NULL,
	expires_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	created_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	updated_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	PRIMARY KEY (storage_key),
	INDEX expires_idx (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
		}
	},
}
