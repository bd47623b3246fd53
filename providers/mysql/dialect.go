package mysql

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"

	"github.com/uptrace/bun"
	bundialect "github.com/uptrace/bun/dialect"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/internal/migrations"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/sqlbase"
)

func init() {
	dialect.Register(&dialect.Entry{
		Name:      "mysql",
		Bun:       bundialect.MySQL,
		Schemes:   []string{"mysql", "mariadb"},
		Example:   "mysql://user:password@localhost:3306/app",
		Translate: TranslateError,
		Check:     func(url string) error { _, _, err := parseURL(url); return err },
		Open:      openDB,
		New: func(_ *bun.DB, cfg dialect.Config) (dialect.Dialect, error) {
			return &mysqlDialect{log: cfg.Logger}, nil
		},
		Migrations: migrationSet,
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

// migrationFiles are MySQL's and MariaDB's versioned migrations.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

var migrationSet = migrations.NewSet(&mysqlDialect{})

func (*mysqlDialect) Migrations() *migrations.Set { return migrationSet }

func (*mysqlDialect) MigrationFiles() fs.FS {
	sub, _ := fs.Sub(migrationFiles, "migrations") // a constant, valid path
	return sub
}

// NowSQL renders the current time in core.TimeFormat.
func (*mysqlDialect) NowSQL() string { return `DATE_FORMAT(UTC_TIMESTAMP(6), '%Y-%m-%dT%H:%i:%s.%fZ')` }

// TransactionalDDL: MySQL commits each DDL statement on its own.
func (*mysqlDialect) TransactionalDDL() bool { return false }

func (*mysqlDialect) TableExists(ctx context.Context, db bun.IDB, n sqlbase.Names) (bool, error) {
	schema, args := tableSchema(n)
	var count int
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "+schema+" AND table_name = ?",
		append(args, n.Base)...).Scan(&count)
	return count > 0, err
}

// tableSchema returns the SQL of n's database (DATABASE() when n is
// unqualified) and its arguments.
func tableSchema(n sqlbase.Names) (string, []any) {
	if i := len(n.Raw) - len(n.Base) - 1; i > 0 {
		return "?", []any{n.Raw[:i]}
	}
	return "DATABASE()", nil
}

// migrateLock names the GET_LOCK lock that serialises concurrent
// migrations of one server.
const migrateLock = "wharf.migrate"

// migrateLockWait is how long Migrate waits for another process's
// migration (GET_LOCK), and migrateMetadataWait how long a migration's
// statement waits for a table's metadata lock (lock_wait_timeout, a year
// by default) before failing, to be run again, rather than queue every
// later statement on the table behind it.
const (
	migrateLockWait     = 60
	migrateMetadataWait = 30
)

// Migrate runs apply on one connection holding GET_LOCK, so that processes
// starting at once wait for each other; it first refuses a pool opened
// without the DSN's session settings (checkSession). MySQL commits each
// DDL statement on its own, so a failure leaves the statements before it
// applied: every migration's statements are safe to run again.
func (*mysqlDialect) Migrate(ctx context.Context, db *bun.DB, apply func(context.Context, bun.IDB) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", migrateLock, migrateLockWait).Scan(&got); err != nil {
		return err
	}
	if got.Int64 != 1 {
		return fmt.Errorf("another process has held the migration lock (GET_LOCK('%s')) for more than %ds; run Migrate again when it is done", migrateLock, migrateLockWait)
	}
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", migrateLock) }()
	if err := checkSession(ctx, conn); err != nil {
		return err
	}
	var wait int64
	if err := conn.QueryRowContext(ctx, "SELECT @@SESSION.lock_wait_timeout").Scan(&wait); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "SET SESSION lock_wait_timeout = ?", min(wait, migrateMetadataWait)); err != nil {
		return err
	}
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), "SET SESSION lock_wait_timeout = ?", wait) }()
	return apply(ctx, conn)
}

// checkSession refuses a pool that was not opened as DSN opens one (a pool
// given to wharf.NewDriver): with NO_BACKSLASH_ESCAPES the backslashes bun
// escapes are stored doubled, and without CLIENT_FOUND_ROWS an UPDATE that
// rewrites a row to its own values (a lease renewed to the same expiry)
// reports no row and reads as a lost claim.
func checkSession(ctx context.Context, conn bun.IConn) error {
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
	// The probe's temporary table lives on one connection.
	if pool, ok := db.(*bun.DB); ok {
		conn, err := pool.Conn(ctx)
		if err != nil {
			return err
		}
		err = checkSession(ctx, conn)
		if cerr := conn.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	} else if err := checkSession(ctx, db); err != nil {
		return err
	}
	catalog := func(ctx context.Context, n sqlbase.Names) (bool, map[string]struct{}, error) {
		schema, args := tableSchema(n)
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
