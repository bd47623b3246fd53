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

	"github.com/wharf-go/wharf/ports"
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
	o := &Outbox{Outbox: inner, listen: opts.Listen, logger: logger}
	if bdb, ok := db.(*bun.DB); ok {
		o.pool = bdb.DB
	}
	return o, nil
}

// WithDB returns a copy bound to db (typically a transaction). It keeps the
// pool and listen settings, so the copy's Notifications works as the
// original's.
func (o *Outbox) WithDB(db bun.IDB) *Outbox {
	c := *o
	c.Outbox = o.Outbox.WithDB(db)
	return &c
}

// Enqueue implements ports.Outbox. In a transaction the messages and their
// notification commit with it; on a *bun.DB (or bun.Conn) it opens a
// transaction of its own.
func (o *Outbox) Enqueue(ctx context.Context, msgs ...ports.OutboxMessage) ([]string, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	switch db := o.DB().(type) {
	case bun.Tx, *bun.Tx:
		return o.Outbox.Enqueue(ctx, msgs...)
	default:
		var ids []string
		err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			var err error
			ids, err = o.Outbox.WithDB(tx).Enqueue(ctx, msgs...)
			return err
		})
		if err != nil {
			return nil, err
		}
		return ids, nil
	}
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
		query, args := ClaimQuery(q, p)
		rows, err := db.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		return outboxsql.ScanRecords(rows)
	},
	AfterEnqueue: func(ctx context.Context, db bun.IDB, n outboxsql.Names, topics []string) error {
		_, err := db.ExecContext(ctx, "SELECT pg_notify(?, ?)", NotifyChannel(n.Raw), notifyPayload(topics))
		return err
	},
}

// ClaimQuery renders PostgreSQL's claim, one statement:
//
//	UPDATE t SET <claim> WHERE id = ANY(ARRAY(
//	    SELECT c.id FROM t AS c WHERE <eligible> ORDER BY c.available_at, c.id
//	    LIMIT n FOR UPDATE SKIP LOCKED)) RETURNING ...
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
func ClaimQuery(q *outboxsql.Queries, p outboxsql.ClaimParams) (string, []any) {
	set, setArgs := q.ClaimSet(p, "? || id")
	eligible, eligArgs := q.Eligible(p, "", " FOR UPDATE SKIP LOCKED")
	return "UPDATE " + q.Names().Table + " SET " + set + " WHERE id = ANY(ARRAY(" + eligible + ")) RETURNING " + outboxsql.Columns,
		append(setArgs, eligArgs...)
}

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
