package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // "mysql" driver for the raw baseline
	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for the raw baseline

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/providers/mysql"
	_ "github.com/wharf-go/wharf/providers/postgres" // wharf.Open: postgres:// URLs
	"github.com/wharf-go/wharf/providers/sqlite"     // also the "sqlite" driver (modernc.org/sqlite)
)

// Table names: wharf's outbox keeps its default name; the raw baseline gets
// its own table created from the same DDL.
const (
	wharfTable  = "outbox_messages"
	rawTable    = "raw_outbox"
	riverSchema = "river_bench"
	benchTopic  = "bench.noop"
)

const columns = "id, kind, topic, ordering_key, payload, headers, status, attempts, max_attempts, available_at, locked_until, claim_token, last_error, created_at, updated_at"

func quoteIdent(dialect, s string) string {
	if dialect == "mysql" {
		return "`" + s + "`"
	}
	return `"` + s + `"`
}

// rawDriver returns the database/sql driver and DSN of the raw baseline:
// the provider's own DSN (same session settings).
func rawDriver(dialect, u string) (driver, dsn string, err error) {
	switch dialect {
	case "sqlite":
		dsn, _, err := sqlite.DSN(u)
		return "sqlite", dsn, err
	case "postgres":
		// The raw baseline uses pgx's default (extended protocol, statement
		// cache) with explicitly prepared statements, and custom plans:
		// after five executions PostgreSQL would otherwise switch the
		// prepared claim to a generic plan that merge-joins the whole
		// primary key (measured: 5,063 instead of 13,627 msgs/s at one
		// worker).
		return "pgx", withParam(u, "plan_cache_mode", "force_custom_plan"), nil
	case "mysql":
		dsn, err := mysql.DSN(u)
		return "mysql", dsn, err
	}
	return "", "", fmt.Errorf("no raw baseline for %s", dialect)
}

func withParam(u, k, v string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + k + "=" + v
}

func openRaw(ctx context.Context, dialect, u string, conns int) (*sql.DB, error) {
	driver, dsn, err := rawDriver(dialect, u)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	setPool(db, conns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// setPool gives the raw baseline's pool the settings poolOptions gives
// wharf's: no open limit, and enough idle connections that workers never
// reconnect (database/sql keeps only 2 idle connections by default).
func setPool(db *sql.DB, conns int) {
	db.SetMaxOpenConns(0)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
}

// poolOptions are setPool's settings for wharf.Open (negative: no limit,
// never).
func poolOptions(conns int) wharf.PoolOptions {
	return wharf.PoolOptions{MaxOpenConns: -1, MaxIdleConns: conns, ConnMaxLifetime: -1, ConnMaxIdleTime: -1}
}

// migrate creates an outbox table named table (and wharf's idempotency
// table) through the driver's Migrate: wharf's table, and the raw
// baseline's from the same DDL. The URL picks the dialect.
func migrate(ctx context.Context, u, table string) error {
	drv, err := wharf.Open(ctx, u, wharf.Options{Outbox: wharf.OutboxOptions{TableName: table}, Logger: benchLogger()})
	if err != nil {
		return err
	}
	if err := drv.Migrate(ctx); err != nil {
		return errors.Join(fmt.Errorf("migrate %s: %w", table, err), drv.Close())
	}
	return drv.Close()
}

// rawSQL renders the raw baseline's INSERT (outboxsql's insert: the same
// columns and values) with native placeholders, so it can be prepared once.
// The claim and complete statements are in rawsql.go.
type rawSQL struct {
	dialect string
	base    string // unquoted
	table   string // quoted
}

func newRawSQL(dialect, table string) rawSQL {
	return rawSQL{dialect: dialect, base: table, table: quoteIdent(dialect, table)}
}

func (r rawSQL) ph(i int) string {
	if r.dialect == "postgres" {
		return fmt.Sprintf("$%d", i)
	}
	return "?"
}

// list renders n placeholders starting at from.
func (r rawSQL) list(from, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.ph(from + i))
	}
	return b.String()
}

func (r rawSQL) insert(rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + r.table + " (" + columns + ") VALUES ")
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + r.list(1+i*15, 15) + ")")
	}
	return b.String()
}

// insertArgs appends one message's 15 column values, as outboxsql.prepare
// builds them.
func insertArgs(args []any, id, payload, now string) []any {
	return append(args, id, "event", benchTopic, nil, payload, nil, "pending", 0, 10, now, nil, nil, nil, now, now)
}

// insertChunk is the most rows of one prepared INSERT: modernc.org/sqlite
// binds parameters in superlinear time (measured on this machine: 27k rows/s
// with 1 or 10 rows per statement, 12.7k with 100, 3.4k with 1,000), so
// SQLite gets 10-row statements; the servers take a batch in one statement.
func insertChunk(dialect string, n int) int {
	if dialect == "sqlite" {
		return min(n, 10)
	}
	return n
}

// seed inserts n pending messages into table fast: multi-row INSERTs of
// 1,000 rows (10 on SQLite), 10,000 rows per transaction. Not timed.
func seed(ctx context.Context, db *sql.DB, dialect, table string, n int) error {
	r := newRawSQL(dialect, table)
	rows := insertChunk(dialect, 1000)
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, s := range stmts {
			s.Close()
		}
	}()
	for done := 0; done < n; {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for k := 0; k < 10_000/rows && done < n; k++ {
			m := min(rows, n-done)
			st := stmts[m]
			if st == nil {
				if st, err = db.PrepareContext(ctx, r.insert(m)); err != nil {
					tx.Rollback()
					return err
				}
				stmts[m] = st
			}
			now := core.FormatTime(time.Now())
			args := make([]any, 0, m*15)
			for i := 0; i < m; i++ {
				args = insertArgs(args, core.NewID(), payload(done+i, 0), now)
			}
			if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...); err != nil {
				tx.Rollback()
				return err
			}
			done += m
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// payload is the message body: a sequence number and the enqueue time in
// Unix nanoseconds (0 in backlogs).
func payload(n int, t int64) string {
	return fmt.Sprintf(`{"n":%d,"t":%d}`, n, t)
}

// payloadTime extracts "t" from a payload without a JSON decoder.
func payloadTime(p []byte) int64 {
	s := string(p)
	i := strings.Index(s, `"t":`)
	if i < 0 {
		return 0
	}
	var t int64
	for _, c := range s[i+4:] {
		if c < '0' || c > '9' {
			break
		}
		t = t*10 + int64(c-'0')
	}
	return t
}

func countRows(ctx context.Context, db *sql.DB, dialect, table string) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+quoteIdent(dialect, table)).Scan(&n)
	return n, err
}
