package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/uptrace/bun"
	bundialect "github.com/uptrace/bun/dialect"

	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/internal/migrations"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/sqlbase"
)

func init() {
	dialect.Register(&dialect.Entry{
		Name:      "sqlite",
		Bun:       bundialect.SQLite,
		Schemes:   []string{"file", "sqlite", "sqlite3"},
		Example:   "file:app.db",
		Translate: TranslateError,
		Check:     func(url string) error { _, _, err := DSN(url); return err },
		Open:      openDB,
		New:       func(*bun.DB, dialect.Config) (dialect.Dialect, error) { return sqliteDialect{}, nil },

		Migrations: migrationSet,
	})
}

// sqliteDialect is SQLite's strategy. It holds nothing: the write gate
// belongs to the *sql.DB (gateFor).
type sqliteDialect struct{}

func (sqliteDialect) Name() string                  { return "sqlite" }
func (sqliteDialect) Quote(s string) string         { return `"` + s + `"` }
func (sqliteDialect) Translate(err error) error     { return TranslateError(err) }
func (sqliteDialect) Gate(db bun.IDB) *sqlbase.Gate { return gateOf(db) }
func (sqliteDialect) MaxInsertRows() int            { return 500 } // bounds one statement's size
func (sqliteDialect) LockingRead() string           { return "" }
func (sqliteDialect) Close() error                  { return nil }

// Listen: SQLite cannot tell this process about other processes' commits.
func (sqliteDialect) Listen(context.Context, *outboxsql.Queries) (<-chan struct{}, error) {
	return nil, nil
}

func (sqliteDialect) InsertIgnore(table, cols, values string) string {
	return "INSERT INTO " + table + " (" + cols + ") VALUES (" + values + ") ON CONFLICT (storage_key) DO NOTHING"
}

func (sqliteDialect) Insert(ctx context.Context, db bun.IDB, q *outboxsql.Queries, rows [][]any, _ []string) error {
	return outboxsql.InsertValues(ctx, db, q, rows)
}

func expiresIndex(n sqlbase.Names) string { return n.Index("_expires_idx") }

// migrationFiles are SQLite's versioned migrations.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

var migrationSet = migrations.NewSet(sqliteDialect{})

func (sqliteDialect) Migrations() *migrations.Set { return migrationSet }

func (sqliteDialect) MigrationFiles() fs.FS {
	sub, _ := fs.Sub(migrationFiles, "migrations") // a constant, valid path
	return sub
}

// NowSQL renders the current time in core.TimeFormat (SQLite's %f has
// milliseconds).
func (sqliteDialect) NowSQL() string { return `strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z'` }

func (sqliteDialect) TransactionalDDL() bool { return true }

func (sqliteDialect) TableExists(ctx context.Context, db bun.IDB, n sqlbase.Names) (bool, error) {
	var name string
	err := db.QueryRowContext(ctx, "SELECT name FROM "+n.Schema+"sqlite_master WHERE type = 'table' AND name = ?", n.Base).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// Migrate runs apply on one connection in a BEGIN IMMEDIATE transaction,
// behind the write gate: SQLite runs DDL in transactions, and the write
// lock that BEGIN IMMEDIATE takes at once (waiting up to the busy timeout)
// serialises processes, whatever _txlock the pool was opened with.
func (sqliteDialect) Migrate(ctx context.Context, db *bun.DB, apply func(context.Context, bun.IDB) error) error {
	ctx, leave, err := gateOf(db).Enter(ctx)
	if err != nil {
		return err
	}
	defer leave()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	err = apply(ctx, conn)
	if err == nil {
		if _, err = conn.ExecContext(ctx, "COMMIT"); err == nil {
			return nil
		}
	}
	if _, rbErr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
		// The connection may still be in the transaction: discard it
		// rather than hand it back to the pool.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		return errors.Join(err, fmt.Errorf("roll back the migration: %w", rbErr))
	}
	return err
}

func (d sqliteDialect) CheckSchema(ctx context.Context, db bun.IDB, q *outboxsql.Queries, idem sqlbase.Names) error {
	catalog := func(ctx context.Context, n sqlbase.Names) (bool, map[string]struct{}, error) {
		if exists, err := d.TableExists(ctx, db, n); err != nil || !exists {
			return false, nil, err
		}
		rows, err := db.QueryContext(ctx, "SELECT name FROM "+n.Schema+"sqlite_master WHERE type = 'index' AND tbl_name = ?", n.Base)
		if err != nil {
			return false, nil, err
		}
		have, err := outboxsql.ScanIDSet(rows)
		return true, have, err
	}
	return dialect.CheckTables(ctx, catalog,
		dialect.Table{Names: q.Names(), Indexes: []string{q.ClaimIndex(), q.KeyIndex()}},
		dialect.Table{Names: idem, Indexes: []string{expiresIndex(idem)}})
}
