package main

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // "mysql" driver for the raw baseline
	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for the raw baseline

	"github.com/wharf-go/wharf/core"
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
	b, err := binding(dialect)
	if err != nil {
		return "", "", err
	}
	return b.RawDSN(u)
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

// setPool gives wharf's and the raw baseline's pools the same settings: no
// open limit, and enough idle connections that workers never reconnect
// (database/sql keeps only 2 idle connections by default).
func setPool(db *sql.DB, conns int) {
	db.SetMaxOpenConns(0)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
}

// setupSQL returns the provider's DDL for an outbox table named table.
func setupSQL(dialect, table string) ([]string, error) {
	b := wharfBindings[dialect]
	if b == nil {
		return nil, fmt.Errorf("no wharf provider for %s", dialect)
	}
	return b.SetupSQL(table)
}

func execAll(ctx context.Context, db *sql.DB, stmts []string) error {
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%w\n%s", err, s)
		}
	}
	return nil
}

// rawSQL renders the raw baseline's INSERT (outboxsql's insert: the same
// columns and values) with native placeholders, so it can be prepared once.
// The claim and complete statements come from the library (libsql.go).
type rawSQL struct {
	dialect string
	table   string // quoted
}

func newRawSQL(dialect, table string) rawSQL {
	return rawSQL{dialect: dialect, table: quoteIdent(dialect, table)}
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
