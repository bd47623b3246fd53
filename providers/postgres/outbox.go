package postgres

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/providers/internal/outboxsql"
)

// OutboxOptions configures NewOutbox. The zero value means the defaults.
// Its first four fields are those of the other providers' OutboxOptions.
type OutboxOptions struct {
	// TableName is a validated identifier, optionally schema-qualified
	// ("wharf.outbox_messages"); default "outbox_messages". An unqualified
	// name is resolved through the connection's search_path.
	TableName string
	// Now is the clock for every time comparison; nil means time.Now. All
	// comparisons use this clock, never the database's.
	Now func() time.Time
	// DefaultMaxAttempts applies to messages enqueued with MaxAttempts 0;
	// default 10.
	DefaultMaxAttempts int
	// Logger; nil discards. The notification listener logs here too.
	Logger *slog.Logger
	// Listen configures the connection behind Notifications.
	Listen ListenOptions
}

func (o OutboxOptions) shared() outboxsql.Options {
	return outboxsql.Options{TableName: o.TableName, Now: o.Now, DefaultMaxAttempts: o.DefaultMaxAttempts, Logger: o.Logger}
}

// Outbox implements ports.Outbox, ports.OutboxAdmin and ports.OutboxNotifier
// on PostgreSQL. Bind it to a transaction with WithDB so enqueued messages
// commit with the business write; WithDB is cheap (the SQL is built once).
//
// Enqueue sends one pg_notify per call in the same transaction, so listeners
// (Notifications) wake up when it commits and never for a rollback. Called
// on a *bun.DB rather than a transaction, Enqueue runs in a transaction of
// its own, so that its rows and its notification are stored all or none.
type Outbox struct {
	*outboxsql.Outbox
	pool   *sql.DB // the pool NewOutbox was given; nil when it was given a transaction
	listen ListenOptions
	logger *slog.Logger
	hub    *listenHub // the LISTEN connection shared by Notifications, also by WithDB copies
}

// NewOutbox returns an outbox on db. An invalid table name is an error
// matching ports.ErrInvalidArgument. Create it on the *bun.DB (and bind
// copies to transactions with WithDB) so that Notifications can derive its
// connection settings from the pool.
func NewOutbox(db bun.IDB, opts OutboxOptions) (*Outbox, error) {
	inner, err := outboxsql.New(db, opts.shared(), outboxDialect)
	if err != nil {
		return nil, err
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := &Outbox{Outbox: inner, listen: opts.Listen, logger: logger, hub: newListenHub()}
	if bdb, ok := db.(*bun.DB); ok {
		o.pool = bdb.DB
	}
	return o, nil
}

// WithDB returns a copy bound to db (typically a transaction). It keeps the
// pool and listen settings, so the copy's Notifications works as the
// original's and shares its connection.
func (o *Outbox) WithDB(db bun.IDB) *Outbox {
	c := *o
	c.Outbox = o.Outbox.WithDB(db)
	return &c
}

// OutboxSetupStatements returns the idempotent CREATE TABLE / INDEX
// statements for opts.
func OutboxSetupStatements(opts OutboxOptions) ([]string, error) {
	return outboxsql.SetupStatements(opts.shared(), outboxDialect)
}

// quote quotes one validated identifier part. Validated parts hold only
// ASCII letters, digits and underscores, so nothing needs escaping; quoting
// keeps their case.
func quote(s string) string { return `"` + s + `"` }

var outboxDialect = &outboxsql.Dialect{
	Name:      "postgres",
	Quote:     quote,
	Translate: TranslateError,
	Returning: true,
	Setup: func(n outboxsql.Names) []string {
		// Timestamps are fixed-width ISO-8601 TEXT as in every dialect;
		// COLLATE "C" makes their order (and the order of IDs) byte order
		// whatever the database's locale, and keeps comparisons cheap.
		return []string{
			"CREATE TABLE IF NOT EXISTS " + n.Table + ` (
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
)`,
			// Index names take no schema: an index lives in its table's schema.
			"CREATE INDEX IF NOT EXISTS " + quote(n.ClaimIndex) + " ON " + n.Table +
				" (available_at, id) WHERE status = 'pending'",
			"CREATE INDEX IF NOT EXISTS " + quote(n.KeyIndex) + " ON " + n.Table +
				" (ordering_key, id) WHERE status = 'pending' AND ordering_key IS NOT NULL",
		}
	},
	Claim: func(ctx context.Context, db bun.IDB, q *outboxsql.Queries, p outboxsql.ClaimParams) ([]outboxsql.Record, error) {
		query, args := claimQuery(q, p, outboxsql.ClaimColumns)
		rows, err := db.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		return outboxsql.ScanClaimed(rows, p)
	},
	Array:  func(s []string) any { return textArray(s) },
	Insert: insertArrays,
	AfterEnqueue: func(ctx context.Context, db bun.IDB, n outboxsql.Names, topics []string) error {
		_, err := db.ExecContext(ctx, "SELECT pg_notify(?, ?)", NotifyChannel(n.Raw), notifyPayload(topics))
		return err
	},
}

// ClaimQuery renders PostgreSQL's claim, one statement:
//
//	UPDATE t SET <claim> WHERE id = ANY(ARRAY(
//	    SELECT c.id FROM t AS c CROSS JOIN generate_series(1, (SELECT 1)) AS rows_hint
//	    WHERE <eligible> ORDER BY c.available_at, c.id
//	    LIMIT n FOR UPDATE OF c SKIP LOCKED)) RETURNING ...
//
// The eligible rows are found by one scan of the partial claim index in
// claim order, skipping (never waiting for) rows that concurrent claimers
// hold, and locked. ARRAY(subquery) makes that scan an InitPlan: it runs
// exactly once per statement, so no more than n rows are ever locked or
// updated, and its result reaches the UPDATE as an array that is matched
// through the primary key whatever n is. (With "id IN (subquery)" or a
// MATERIALIZED CTE joined by UPDATE ... FROM, the planner sizes the join by
// n: from about a thousand rows it picks a hash join fed by a sequential scan
// of the whole table, dead letters included.)
//
// The cross join with generate_series(1, (SELECT 1)) adds exactly one row per
// candidate, so it changes nothing in the result; it is a row-count hint (see
// claimRowsHint) that keeps the ordered scan of the claim index the cheapest
// plan on a table without statistics.
//
// ClaimQuery returns every column (outboxsql.Columns); the outbox's own
// claim is the same statement returning outboxsql.ClaimColumns only.
func ClaimQuery(q *outboxsql.Queries, p outboxsql.ClaimParams) (string, []any) {
	return claimQuery(q, p, outboxsql.Columns)
}

func claimQuery(q *outboxsql.Queries, p outboxsql.ClaimParams, returning string) (string, []any) {
	set, setArgs := q.ClaimSet(p, "? || id")
	eligible, eligArgs := q.Eligible(p, claimRowsHint, " FOR UPDATE OF c SKIP LOCKED")
	return "UPDATE " + q.Names().Table + " SET " + set + " WHERE id = ANY(ARRAY(" + eligible + ")) RETURNING " + returning,
		append(setArgs, eligArgs...)
}

// claimRowsHint follows the claim subquery's table reference. It joins each
// candidate row to a one-row set that the planner counts as 1000 rows
// (generate_series' declared row count, used because the bound (SELECT 1)
// is not a constant it can read), so the candidates are estimated at 1000
// times what the WHERE clause leaves.
//
// Without it, a table that was never analyzed (just after Migrate, a bulk
// load, autovacuum off or behind) is planned with default selectivities:
// status = 'pending' and topic IN (...) at 0.5% each, available_at <= now
// at a third, and so on, which estimate one or two eligible rows whatever
// the backlog. A LIMIT at or above the estimate counts as "read everything",
// so the ordered index scan is charged in full and loses, by a few percent,
// to a bitmap scan of the claim index plus a sort: a plan that reads, checks
// (per-key FIFO included) and sorts every due pending row to return n.
// Measured (EXPLAIN ANALYZE, PostgreSQL 15), a claim of 100 took 32 ms
// instead of 2 ms with 20,000 rows pending, and 0.3 to 1.3 s instead of 2 to
// 3 ms with 100,000 (half of them keyed, 1,000 keys). No form of
// the query without a larger estimate escapes this: a non-constant LIMIT,
// a CTE or a LATERAL subquery are all costed against the same 1-row
// estimate. With the hint the LIMIT covers a small fraction of the estimated
// rows and the ordered scan, which stops after n eligible rows, is the
// cheapest by far. With statistics the planner already prefers it for
// batches that are small next to the backlog; the hint extends that to
// batches that take most of it, where the ordered scan still reads no more
// rows than a sort would. Its price is a few hundredths of a millisecond of
// planning and one function call per claimed row. FOR UPDATE OF c keeps the
// lock on the outbox rows only (a function cannot be locked).
const claimRowsHint = " CROSS JOIN generate_series(1, (SELECT 1)) AS rows_hint"

// notifyPrefix starts every notification channel name.
const notifyPrefix = "wharf_outbox_"

// maxChannelLength is PostgreSQL's identifier limit (NAMEDATALEN - 1), which
// bounds channel names.
const maxChannelLength = 63

// NotifyChannel returns the channel on which Enqueue notifies for table (""
// means the default table): "wharf_outbox_" followed by the table name as
// configured (schema included when given). Names longer than 63 bytes are
// cut and end in a hash of the whole name, so distinct tables keep distinct
// channels. Tables of the same unqualified name in different schemas (found
// through search_path) share a channel; their listeners then see spurious
// wake-ups, which the notifier contract allows.
func NotifyChannel(table string) string {
	if table == "" {
		table = outboxsql.DefaultTableName
	}
	ch := notifyPrefix + table
	if len(ch) <= maxChannelLength {
		return ch
	}
	sum := sha256.Sum256([]byte(table))
	suffix := "_" + hex.EncodeToString(sum[:4])
	return ch[:maxChannelLength-len(suffix)] + suffix
}

// maxPayload keeps notification payloads below PostgreSQL's 8000-byte limit.
const maxPayload = 7999

// notifyPayload is the payload of Enqueue's notification: the distinct
// topics of the call, newline-separated (a single topic as is), or "" when
// they would not fit. Listeners treat it as a hint only.
func notifyPayload(topics []string) string {
	if len(topics) == 1 {
		if len(topics[0]) > maxPayload {
			return ""
		}
		return topics[0]
	}
	p := strings.Join(topics, "\n")
	if len(p) > maxPayload {
		return ""
	}
	return p
}
