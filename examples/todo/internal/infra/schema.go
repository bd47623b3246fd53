// Package infra is the todo app's infrastructure: the bun repositories and
// the schema of the app's own tables. It is the only package of the app that
// sees bun and SQL. wharf's tables (outbox, idempotency records) are the
// driver's business: wharf.Driver.Migrate creates them.
package infra

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
)

// schemas holds the DDL of the app's tables per wharf dialect
// (wharf.Driver.Dialect()): bounded VARCHAR columns and core.TimeFormat text
// timestamps, whose string order is their time order, with the (timestamp,
// id) indexes that keyset pagination walks. Every statement is idempotent.
var schemas = map[string][]string{
	// SQLite.
	"sqlite": {
		`CREATE TABLE IF NOT EXISTS todos (
	id VARCHAR(36) NOT NULL PRIMARY KEY,
	title VARCHAR(200) NOT NULL,
	completed_at VARCHAR(27),
	created_at VARCHAR(27) NOT NULL,
	updated_at VARCHAR(27) NOT NULL
)`,
		`CREATE INDEX IF NOT EXISTS todos_created_idx ON todos (created_at, id)`,
		`CREATE TABLE IF NOT EXISTS todo_activity (
	id VARCHAR(36) NOT NULL PRIMARY KEY,
	event_type VARCHAR(64) NOT NULL,
	todo_id VARCHAR(36) NOT NULL,
	title VARCHAR(200) NOT NULL,
	occurred_at VARCHAR(27) NOT NULL,
	recorded_at VARCHAR(27) NOT NULL
)`,
		`CREATE INDEX IF NOT EXISTS todo_activity_occurred_idx ON todo_activity (occurred_at, id)`,
	},
	// PostgreSQL. IDs and timestamps are COLLATE "C", as in wharf's own
	// tables, so their order is byte order whatever the database's locale.
	"postgres": {
		`CREATE TABLE IF NOT EXISTS todos (
	id VARCHAR(36) COLLATE "C" NOT NULL PRIMARY KEY,
	title VARCHAR(200) NOT NULL,
	completed_at VARCHAR(27) COLLATE "C",
	created_at VARCHAR(27) COLLATE "C" NOT NULL,
	updated_at VARCHAR(27) COLLATE "C" NOT NULL
)`,
		`CREATE INDEX IF NOT EXISTS todos_created_idx ON todos (created_at, id)`,
		`CREATE TABLE IF NOT EXISTS todo_activity (
	id VARCHAR(36) COLLATE "C" NOT NULL PRIMARY KEY,
	event_type VARCHAR(64) NOT NULL,
	todo_id VARCHAR(36) COLLATE "C" NOT NULL,
	title VARCHAR(200) NOT NULL,
	occurred_at VARCHAR(27) COLLATE "C" NOT NULL,
	recorded_at VARCHAR(27) COLLATE "C" NOT NULL
)`,
		`CREATE INDEX IF NOT EXISTS todo_activity_occurred_idx ON todo_activity (occurred_at, id)`,
	},
	// MySQL and MariaDB. IDs and timestamps are ASCII with a binary
	// collation, as in wharf's own tables, so their order is byte order;
	// titles are utf8mb4. The indexes are declared in CREATE TABLE (MySQL
	// has no CREATE INDEX IF NOT EXISTS).
	"mysql": {
		"CREATE TABLE IF NOT EXISTS todos (" + `
	id VARCHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	title VARCHAR(200) NOT NULL,
	completed_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NULL,
	created_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	updated_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	PRIMARY KEY (id),
	INDEX todos_created_idx (created_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
		"CREATE TABLE IF NOT EXISTS todo_activity (" + `
	id VARCHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	event_type VARCHAR(64) NOT NULL,
	todo_id VARCHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	title VARCHAR(200) NOT NULL,
	occurred_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	recorded_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	PRIMARY KEY (id),
	INDEX todo_activity_occurred_idx (occurred_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
	},
}

// postgresSchemaLock serialises concurrent migrations of several app
// instances (CREATE ... IF NOT EXISTS alone can race on PostgreSQL).
const postgresSchemaLock = 0x746f646f // "todo"

// Migrate creates the app's tables and indexes on db if they do not exist,
// with the DDL of dialect (wharf.Driver.Dialect(): "sqlite", "postgres" or
// "mysql"). It runs on every start, after the driver's own Migrate.
func Migrate(ctx context.Context, db *bun.DB, dialect string) error {
	stmts, ok := schemas[dialect]
	if !ok {
		return fmt.Errorf("todo schema: no DDL for dialect %q", dialect)
	}
	if dialect != "postgres" {
		return execAll(ctx, db, stmts)
	}
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", postgresSchemaLock); err != nil {
			return fmt.Errorf("todo schema: lock: %w", err)
		}
		return execAll(ctx, tx, stmts)
	})
}

func execAll(ctx context.Context, db bun.IDB, stmts []string) error {
	for i, stmt := range stmts {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("todo schema: statement %d of %d: %w", i+1, len(stmts), err)
		}
	}
	return nil
}
