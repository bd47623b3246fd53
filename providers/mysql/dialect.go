package mysql

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"

	"github.com/uptrace/bun"
	bundialect "github.com/uptrace/bun/dialect"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/sqlbase"
)

func init() {
	dialect.Register(&dialect.Entry{
		Name:    "mysql",
		Bun:     bundialect.MySQL,
		Schemes: []string{"mysql", "mariadb"},
		Example: "mysql://user:password@localhost:3306/app",
		Check:   func(url string) error { _, _, err := parseURL(url); return err },
		Open:    openDB,
		New: func(_ *bun.DB, cfg dialect.Config) (dialect.Dialect, error) {
			return &mysqlDialect{log: cfg.Logger}, nil
		},
	})
}

// Index names. MySQL index names are local to their table, so they need no
// table prefix (which could push them past MySQL's 64-character limit).
const (
	claimIndex   = "claim_idx"
	keyIndex     = "key_idx"
	expiresIndex = "expires_idx"
)

// pkHint pins a statement that takes a list of IDs to the primary key: with
// stale statistics (a young or fast-changing table) InnoDB may prefer a full
// scan to a few primary-key lookups, and a locking full scan locks every
// row.
const pkHint = " FORCE INDEX (PRIMARY)"

// mysqlDialect is MySQL's and MariaDB's strategy.
type mysqlDialect struct {
	log *slog.Logger
}

func (*mysqlDialect) Name() string               { return "mysql" }
func (*mysqlDialect) Quote(s string) string      { return "`" + s + "`" }
func (*mysqlDialect) Translate(err error) error  { return TranslateError(err) }
func (*mysqlDialect) Gate(bun.IDB) *sqlbase.Gate { return nil }
func (*mysqlDialect) MaxInsertRows() int         { return 500 } // keeps a statement under max_allowed_packet
func (*mysqlDialect) Close() error               { return nil }

// Listen: MySQL cannot tell this process about other processes' commits.
func (*mysqlDialect) Listen(context.Context, *outboxsql.Queries) (<-chan struct{}, error) {
	return nil, nil
}

// InsertIgnore: not ON DUPLICATE KEY UPDATE, whose no-op reports 1 row
// under CLIENT_FOUND_ROWS, indistinguishable from an insert. The values
// INSERT IGNORE could otherwise adjust are all length-checked (or
// fixed-length) in Go.
func (*mysqlDialect) InsertIgnore(table, cols, values string) string {
	return "INSERT IGNORE INTO " + table + " (" + cols + ") VALUES (" + values + ")"
}

// LockingRead: a shared lock returns the latest committed record even in a
// REPEATABLE READ transaction whose snapshot predates it. INSERT IGNORE
// already holds a shared lock on the duplicate row, so concurrent reservers
// of one key can all read it without deadlocking (FOR UPDATE would make
// them wait for each other's shared locks).
func (*mysqlDialect) LockingRead() string { return " LOCK IN SHARE MODE" }

func (*mysqlDialect) Insert(ctx context.Context, db bun.IDB, q *outboxsql.Queries, rows [][]any, _ []string) error {
	return outboxsql.InsertValues(ctx, db, q, rows)
}

// OutboxSetup: id, topic, ordering_key and claim_token are VARBINARY,
// compared byte for byte (the order of Go's strings.Compare and of SQLite),
// where the utf8mb4_bin collation would ignore trailing spaces ("k" = "k ").
// 1020 bytes hold 255 characters of 4-byte UTF-8. The indexes are declared
// inside CREATE TABLE: MySQL has no CREATE INDEX IF NOT EXISTS.
func (*mysqlDialect) OutboxSetup(q *outboxsql.Queries) []string {
	return []string{
		"CREATE TABLE IF NOT EXISTS " + q.Names().Table + ` (
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
}

func (*mysqlDialect) IdempotencySetup(n sqlbase.Names) []string {
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
	INDEX ` + expiresIndex + ` (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`,
	}
}

// migrateLock names the GET_LOCK lock that serialises concurrent
// migrations of one server.
const migrateLock = "wharf.migrate"

// Migrate runs stmts one by one on one connection holding GET_LOCK, so
// processes starting at once do not race. MySQL commits each CREATE on its
// own; every statement is idempotent (IF NOT EXISTS), so a failure is
// repaired by running Migrate again.
func (*mysqlDialect) Migrate(ctx context.Context, db *bun.DB, stmts []string) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 60)", migrateLock).Scan(&got); err != nil {
		return err
	}
	if got.Int64 != 1 {
		return errors.New("another process holds the migration lock (GET_LOCK('" + migrateLock + "')) for more than 60s")
	}
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", migrateLock) }()
	if err := checkSession(ctx, conn); err != nil {
		return err
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// checkSession refuses a pool that was not opened as DSN opens one (a pool
// given to wharf.NewDriver): with NO_BACKSLASH_ESCAPES the backslashes bun
// escapes are stored doubled, and without CLIENT_FOUND_ROWS an UPDATE that
// rewrites a row to its own values (a lease renewed to the same expiry)
// reports no row and reads as a lost claim.
func checkSession(ctx context.Context, conn bun.Conn) error {
	var mode string
	if err := conn.QueryRowContext(ctx, "SELECT @@SESSION.sql_mode").Scan(&mode); err != nil {
		return err
	}
	if strings.Contains(strings.ToUpper(mode), "NO_BACKSLASH_ESCAPES") {
		return check.Invalidf("mysql: the pool's sql_mode includes NO_BACKSLASH_ESCAPES, which would store escaped text doubled; open the pool with mysql.DSN (or wharf.Open)")
	}
	probe := []string{
		"CREATE TEMPORARY TABLE wharf_found_rows_probe (x INT)",
		"INSERT INTO wharf_found_rows_probe VALUES (1)",
	}
	for _, q := range probe {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DROP TEMPORARY TABLE IF EXISTS wharf_found_rows_probe")
	}()
	res, err := conn.ExecContext(ctx, "UPDATE wharf_found_rows_probe SET x = 1")
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return errors.Join(err, check.Invalidf("mysql: the pool reports changed rows, not matched rows (clientFoundRows is off), so a renewed lease would read as a lost claim; open the pool with mysql.DSN (or wharf.Open)"))
	}
	return nil
}

func (*mysqlDialect) CheckSchema(ctx context.Context, db bun.IDB, q *outboxsql.Queries, idem sqlbase.Names) error {
	catalog := func(ctx context.Context, n sqlbase.Names) (bool, map[string]struct{}, error) {
		schema := "DATABASE()"
		args := []any{}
		if i := len(n.Raw) - len(n.Base) - 1; i > 0 {
			schema, args = "?", append(args, n.Raw[:i])
		}
		rows, err := db.QueryContext(ctx, "SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = "+schema+" AND table_name = ?",
			append(args, n.Base)...)
		if err != nil {
			return false, nil, err
		}
		have, err := outboxsql.ScanIDSet(rows)
		// Every wharf table has a primary key, so a table with no index
		// entry does not exist.
		return len(have) > 0, have, err
	}
	return dialect.CheckTables(ctx, catalog,
		dialect.Table{Names: q.Names(), Indexes: []string{claimIndex, keyIndex}},
		dialect.Table{Names: idem, Indexes: []string{expiresIndex}})
}
