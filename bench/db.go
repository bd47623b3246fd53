package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	_ "github.com/go-sql-driver/mysql" // "mysql" driver for the raw baseline
	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for the raw baseline

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/providers/mysql"
	_ "github.com/wharf-go/wharf/providers/postgres" // wharf.Open: postgres:// URLs
	"github.com/wharf-go/wharf/providers/sqlite"     // also the "sqlite" driver (modernc.org/sqlite)
)

// Table names: wharf's outbox keeps its default name; the raw baseline gets
// its own table created from the same DDL. The idempotency workload writes
// wharf's idempotency table and a business table of its own.
const (
	wharfTable  = "outbox_messages"
	rawTable    = "raw_outbox"
	idemTable   = "idempotency_records"
	ordersTable = "bench_orders"
	riverSchema = "river_bench"
	benchTopic  = "bench.noop"
)

// createOrders creates the idempotency workload's business table: an
// order ID and a small JSON document.
func createOrders(ctx context.Context, db *sql.DB, dialect string) error {
	typ := "TEXT"
	if dialect == "mysql" {
		typ = "VARCHAR(64)"
	}
	_, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+quoteIdent(dialect, ordersTable)+
		" (id "+typ+" NOT NULL PRIMARY KEY, customer "+typ+" NOT NULL, body TEXT NOT NULL, created_at "+typ+" NOT NULL)")
	return err
}

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
		if os.Getenv("WHARF_BENCH_RAW_PROTOCOL") == "simple" {
			// Diagnostic: the baseline on wharf's protocol (values in the
			// statement text, parsed and planned every time).
			return "pgx", withParam(u, "default_query_exec_mode", "simple_protocol"), nil
		}
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
	if conns == 0 {
		return wharf.PoolOptions{} // the library's defaults
	}
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

// seedRows writes n messages of status (pending or dead) into table,
// generated by the database itself (generate_series, MariaDB's sequence
// engine, a recursive CTE on SQLite) in chunks of seedChunk rows, each
// chunk its own transaction. Not timed. The messages look like a backlog
// produced at 10,000 msgs/s that ended a second ago: available_at (and
// created_at) 100 µs apart, every one distinct; IDs sort in the same order
// (UUID-shaped, 36 characters); payload {"n":N,"t":0}; no ordering key.
// Dead letters have used their 10 attempts.
func seedRows(ctx context.Context, db *sql.DB, dialect, table string, n int, status string) error {
	const step = 100 // µs between messages
	base := time.Now().UnixMicro() - int64(n+1)*step - 1_000_000
	attempts, lastErr := 0, "NULL"
	if status == "dead" {
		attempts, lastErr = 10, "'bench dead letter'"
	}
	q := quoteIdent(dialect, table)
	var stmt string
	switch dialect {
	case "postgres":
		stmt = fmt.Sprintf(`INSERT INTO %s (%s) SELECT '00000000-0000-7000-8000-' || lpad(g::text, 12, '0'), 'event', '%s', NULL,
			'{"n":' || g || ',"t":0}', NULL, '%s', %d, 10, ts, NULL, NULL, %s, ts, ts
			FROM (SELECT g, to_char(timestamp 'epoch' + (%d + g * %d) * interval '1 microsecond', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS ts
			      FROM generate_series($1::bigint, $2::bigint) AS g) AS s`, q, columns, benchTopic, status, attempts, lastErr, base, step)
	case "mysql":
		// seq_1_to_N counts from 1; the chunk bounds pick a range of it.
		stmt = fmt.Sprintf(`INSERT INTO %s (%s) SELECT CONCAT('00000000-0000-7000-8000-', LPAD(seq, 12, '0')), 'event', '%s', NULL,
			CONCAT('{"n":', seq, ',"t":0}'), NULL, '%s', %d, 10, ts, NULL, NULL, %s, ts, ts
			FROM (SELECT seq, DATE_FORMAT(TIMESTAMPADD(MICROSECOND, %d + seq * %d, '1970-01-01 00:00:00'), '%%Y-%%m-%%dT%%H:%%i:%%s.%%fZ') AS ts
			      FROM seq_1_to_%d WHERE seq BETWEEN ? AND ?) AS s`, q, columns, benchTopic, status, attempts, lastErr, base, step, n)
	case "sqlite":
		stmt = fmt.Sprintf(`WITH RECURSIVE g(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM g WHERE n < ?)
			INSERT INTO %s (%s) SELECT printf('00000000-0000-7000-8000-%%012d', n), 'event', '%s', NULL,
			'{"n":' || n || ',"t":0}', NULL, '%s', %d, 10, ts, NULL, NULL, %s, ts, ts
			FROM (SELECT n, strftime('%%Y-%%m-%%dT%%H:%%M:%%S', (%d + n * %d) / 1000000, 'unixepoch') || printf('.%%06dZ', (%d + n * %d) %% 1000000) AS ts FROM g)`,
			q, columns, benchTopic, status, attempts, lastErr, base, step, base, step)
	default:
		return fmt.Errorf("no seeding for %s", dialect)
	}
	for lo := 1; lo <= n; lo += seedChunk {
		hi := min(n, lo+seedChunk-1)
		if _, err := db.ExecContext(ctx, stmt, lo, hi); err != nil {
			return fmt.Errorf("seed rows %d-%d: %w", lo, hi, err)
		}
	}
	return nil
}

// seedChunk is the most rows one seeding statement writes.
const seedChunk = 100_000

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
