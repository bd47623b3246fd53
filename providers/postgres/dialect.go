package postgres

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/uptrace/bun"
	bundialect "github.com/uptrace/bun/dialect"

	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/sqlbase"
)

func init() {
	dialect.Register(&dialect.Entry{
		Name:    "postgres",
		Bun:     bundialect.PG,
		Schemes: []string{"postgres", "postgresql"},
		Example: "postgres://user:password@localhost:5432/app?sslmode=disable",
		Check:   func(url string) error { _, err := ParseURL(url); return err },
		Open:    openDB,
		New: func(db *bun.DB, cfg dialect.Config) (dialect.Dialect, error) {
			if cfg.Listen.URL != "" {
				if _, err := ParseURL(cfg.Listen.URL); err != nil {
					return nil, fmt.Errorf("Options.Listen.URL: %w", err)
				}
			}
			return &pgDialect{db: db, listen: cfg.Listen, log: cfg.Logger, hub: newListenHub()}, nil
		},
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

// OutboxSetup: timestamps are fixed-width ISO-8601 TEXT as in every
// dialect; COLLATE "C" makes their order (and the order of IDs) byte order
// whatever the database's locale, and keeps comparisons cheap. The free
// space a fillfactor of 70 leaves on each page lets claims, extensions and
// releases, which change no indexed column, be HOT updates that add no
// index entry. Index names take no schema: an index lives in its table's
// schema.
func (d *pgDialect) OutboxSetup(q *outboxsql.Queries) []string {
	t := q.Names().Table
	return []string{
		"CREATE TABLE IF NOT EXISTS " + t + ` (
	id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	kind TEXT NOT NULL,
	topic TEXT NOT NULL,
	ordering_key TEXT COLLATE "C",
	payload TEXT NOT NULL,
	headers TEXT,
	status TEXT NOT NULL,
	attempts INTEGER NOT NULL DEFAULT 0,
	max_attempts INTEGER NOT NULL,
	available_at TEXT COLLATE "C" NOT NULL,
	locked_until TEXT COLLATE "C",
	claim_token TEXT COLLATE "C",
	last_error TEXT,
	created_at TEXT COLLATE "C" NOT NULL,
	updated_at TEXT COLLATE "C" NOT NULL
) WITH (fillfactor = 70)`,
		"CREATE INDEX IF NOT EXISTS " + d.Quote(q.ClaimIndex()) + " ON " + t + " (available_at, id) WHERE status = 'pending'",
		"CREATE INDEX IF NOT EXISTS " + d.Quote(q.KeyIndex()) + " ON " + t +
			" (ordering_key, id) WHERE status = 'pending' AND ordering_key IS NOT NULL",
	}
}

func (d *pgDialect) IdempotencySetup(n sqlbase.Names) []string {
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
		"CREATE INDEX IF NOT EXISTS " + d.Quote(n.Index("_expires_idx")) + " ON " + n.Table + " (expires_at)",
	}
}

// migrateLockKey is the transaction-level advisory lock that serialises
// concurrent migrations of one database.
const migrateLockKey = 0x77686172 // "whar"

// Migrate runs stmts in one transaction holding an advisory lock, so
// concurrent CREATE ... IF NOT EXISTS never race and a failure leaves
// nothing half-created.
func (*pgDialect) Migrate(ctx context.Context, db *bun.DB, stmts []string) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", migrateLockKey); err != nil {
			return err
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
}

func (*pgDialect) CheckSchema(ctx context.Context, db bun.IDB, q *outboxsql.Queries, idem sqlbase.Names) error {
	catalog := func(ctx context.Context, n sqlbase.Names) (bool, map[string]struct{}, error) {
		var exists bool
		if err := db.QueryRowContext(ctx, "SELECT to_regclass(?) IS NOT NULL", n.Table).Scan(&exists); err != nil || !exists {
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
