package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/uptrace/bun"
	bundialect "github.com/uptrace/bun/dialect"

	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/internal/migrations"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/sqlbase"
)

func init() {
	dialect.Register(&dialect.Entry{
		Name:      "postgres",
		Bun:       bundialect.PG,
		Schemes:   []string{"postgres", "postgresql"},
		Example:   "postgres://user:password@localhost:5432/app?sslmode=disable",
		Translate: TranslateError,
		Check:     func(url string) error { _, err := ParseURL(url); return err },
		Open:      openDB,
		New: func(db *bun.DB, cfg dialect.Config) (dialect.Dialect, error) {
			if cfg.Listen.URL != "" {
				if _, err := ParseURL(cfg.Listen.URL); err != nil {
					return nil, fmt.Errorf("Options.Listen.URL: %w", err)
				}
			}
			return &pgDialect{db: db, listen: cfg.Listen, log: cfg.Logger, hub: newListenHub()}, nil
		},
		Migrations: migrationSet,
	})
}

// pgDialect is PostgreSQL's strategy for one driver. It keeps the LISTEN
// connection that its outbox's Notifications share.
type pgDialect struct {
	db     *bun.DB // the driver's pool: the listener copies its settings
	listen dialect.Listen
	log    *slog.Logger
	hub    *listenHub
}

func (*pgDialect) Name() string { return "postgres" }

// Quote quotes one validated identifier part. Validated parts hold only
// ASCII letters, digits and underscores, so nothing needs escaping; quoting
// keeps their case.
func (*pgDialect) Quote(s string) string      { return `"` + s + `"` }
func (*pgDialect) Translate(err error) error  { return TranslateError(err) }
func (*pgDialect) Gate(bun.IDB) *sqlbase.Gate { return nil }
func (*pgDialect) MaxInsertRows() int         { return 0 } // one array per column, whatever the rows
func (*pgDialect) LockingRead() string        { return "" }
func (d *pgDialect) Close() error             { d.hub.shutdown(); return nil }

func (*pgDialect) InsertIgnore(table, cols, values string) string {
	return "INSERT INTO " + table + " (" + cols + ") VALUES (" + values + ") ON CONFLICT (storage_key) DO NOTHING"
}

// migrationFiles are PostgreSQL's versioned migrations.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

var migrationSet = migrations.NewSet(&pgDialect{})

func (*pgDialect) Migrations() *migrations.Set { return migrationSet }

func (*pgDialect) MigrationFiles() fs.FS {
	sub, _ := fs.Sub(migrationFiles, "migrations") // a constant, valid path
	return sub
}

// NowSQL renders the current time in core.TimeFormat.
func (*pgDialect) NowSQL() string {
	return `to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`
}

func (*pgDialect) TransactionalDDL() bool { return true }

func (*pgDialect) TableExists(ctx context.Context, db bun.IDB, n sqlbase.Names) (bool, error) {
	var exists bool
	err := db.QueryRowContext(ctx, "SELECT to_regclass(?) IS NOT NULL", n.Table).Scan(&exists)
	return exists, err
}

// migrateLockKey is the transaction-level advisory lock that serialises
// concurrent migrations of one database.
const migrateLockKey = 0x77686172 // "whar"

// migrateLockTimeout bounds a migration's wait for a table lock (a long
// transaction holding one): past it the migration fails, to be run again,
// rather than queue every later statement on the table behind its lock.
const migrateLockTimeout = "30s"

// Migrate runs apply in one transaction holding a transaction-level
// advisory lock: concurrent migrations (from any process) wait for each
// other, a failure leaves nothing half-done, and the lock works through a
// transaction-pooling proxy such as PgBouncer, since it ends with the
// transaction.
func (*pgDialect) Migrate(ctx context.Context, db *bun.DB, apply func(context.Context, bun.IDB) error) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", migrateLockKey); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = '"+migrateLockTimeout+"'"); err != nil {
			return err
		}
		return apply(ctx, tx)
	})
}

func (d *pgDialect) CheckSchema(ctx context.Context, db bun.IDB, q *outboxsql.Queries, idem sqlbase.Names) error {
	catalog := func(ctx context.Context, n sqlbase.Names) (bool, map[string]struct{}, error) {
		if exists, err := d.TableExists(ctx, db, n); err != nil || !exists {
			return false, nil, err
		}
		rows, err := db.QueryContext(ctx, "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = to_regclass(?)", n.Table)
		if err != nil {
			return false, nil, err
		}
		have, err := outboxsql.ScanIDSet(rows)
		return true, have, err
	}
	return dialect.CheckTables(ctx, catalog,
		dialect.Table{Names: q.Names(), Indexes: []string{q.ClaimIndex(), q.KeyIndex()}},
		dialect.Table{Names: idem, Indexes: []string{idem.Index("_expires_idx")}})
}
