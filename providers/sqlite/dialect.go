package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/uptrace/bun"
	bundialect "github.com/uptrace/bun/dialect"

	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/sqlbase"
)

func init() {
	dialect.Register(&dialect.Entry{
		Name:    "sqlite",
		Bun:     bundialect.SQLite,
		Schemes: []string{"file", "sqlite", "sqlite3"},
		Example: "file:app.db",
		Check:   func(url string) error { _, _, err := DSN(url); return err },
		Open:    openDB,
		New:     func(*bun.DB, dialect.Config) (dialect.Dialect, error) { return sqliteDialect{}, nil },
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

func (sqliteDialect) Settle(ctx context.Context, db bun.IDB, q *outboxsql.Queries, s outboxsql.Settlement) ([]string, error) {
	return outboxsql.SettleReturning(ctx, db, q, s)
}

func (d sqliteDialect) OutboxSetup(q *outboxsql.Queries) []string {
	n := q.Names()
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
		// An index of an attached schema is named with the schema, and
		// created on the bare table name.
		"CREATE INDEX IF NOT EXISTS " + n.Schema + d.Quote(q.ClaimIndex()) + " ON " + d.Quote(n.Base) +
			" (available_at, id) WHERE status = 'pending'",
		"CREATE INDEX IF NOT EXISTS " + n.Schema + d.Quote(q.KeyIndex()) + " ON " + d.Quote(n.Base) +
			" (ordering_key, id) WHERE status = 'pending' AND ordering_key IS NOT NULL",
	}
}

func (d sqliteDialect) IdempotencySetup(n sqlbase.Names) []string {
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
		"CREATE INDEX IF NOT EXISTS " + n.Schema + d.Quote(expiresIndex(n)) + " ON " + d.Quote(n.Base) + " (expires_at)",
	}
}

func expiresIndex(n sqlbase.Names) string { return n.Index("_expires_idx") }

// Claim is one UPDATE ... WHERE id IN (eligible) RETURNING, the eligible
// scan forced onto the claim index (after ANALYZE the planner may prefer a
// full scan). SQLite needs no SKIP LOCKED: its write lock serialises
// claimers.
func (sqliteDialect) Claim(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams) ([]outboxsql.Record, error) {
	query, args := claimQuery(q, p)
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return outboxsql.ScanRecordsN(rows, p.Limit)
}

func claimQuery(q *outboxsql.Queries, p outboxsql.ClaimParams) (string, []any) {
	set, setArgs := q.ClaimSet(p, "? || id")
	eligible, eligArgs := q.Eligible(p, ` INDEXED BY "`+q.ClaimIndex()+`"`, "")
	return "UPDATE " + q.Names().Table + " SET " + set + " WHERE id IN (" + eligible + ") RETURNING " + outboxsql.Columns,
		append(setArgs, eligArgs...)
}

// Migrate runs stmts in one transaction, behind the write gate: SQLite runs
// DDL in transactions, and its write lock serialises processes.
func (sqliteDialect) Migrate(ctx context.Context, db *bun.DB, stmts []string) error {
	ctx, leave, err := gateOf(db).Enter(ctx)
	if err != nil {
		return err
	}
	defer leave()
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	})
}

func (d sqliteDialect) CheckSchema(ctx context.Context, db bun.IDB, q *outboxsql.Queries, idem sqlbase.Names) error {
	catalog := func(ctx context.Context, n sqlbase.Names) (bool, map[string]struct{}, error) {
		master := n.Schema + "sqlite_master"
		var name string
		err := db.QueryRowContext(ctx, "SELECT name FROM "+master+" WHERE type = 'table' AND name = ?", n.Base).Scan(&name)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil, nil
		}
		if err != nil {
			return false, nil, err
		}
		rows, err := db.QueryContext(ctx, "SELECT name FROM "+master+" WHERE type = 'index' AND tbl_name = ?", n.Base)
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
