// Package outboxsql is the outbox shared by every provider: validation,
// enqueue, completion, retry, admin queries and row scanning are written once
// here; a Dialect supplies the claim statement, the DDL and the few clauses
// that differ.
package outboxsql

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/internal/txn"
)

// Defaults.
const (
	DefaultTableName   = "outbox_messages"
	DefaultMaxAttempts = 10
	// enqueueChunk bounds the rows of one INSERT statement.
	enqueueChunk = 500
	// LeaseExpiredError is the last error of a message dead-lettered because
	// its lease expired on its final attempt.
	LeaseExpiredError = "lease expired on the final attempt (worker crashed or too slow)"
)

// Options configures an outbox. The zero value means defaults.
type Options struct {
	// TableName is a validated identifier, optionally schema-qualified.
	// Default "outbox_messages".
	TableName string
	// Now is the clock for every time comparison; nil means time.Now. All
	// comparisons use this clock, never the database's.
	Now func() time.Time
	// DefaultMaxAttempts applies to messages enqueued with MaxAttempts 0.
	// Default 10.
	DefaultMaxAttempts int
	// Logger; nil discards.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.TableName == "" {
		o.TableName = DefaultTableName
	}
	if o.DefaultMaxAttempts == 0 {
		o.DefaultMaxAttempts = DefaultMaxAttempts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func (o *Options) validate() error {
	if err := core.ValidateIdentifier(o.TableName); err != nil {
		return fmt.Errorf("outbox table name: %w", err)
	}
	if o.DefaultMaxAttempts < 0 {
		return core.Invalidf("outbox DefaultMaxAttempts %d is negative", o.DefaultMaxAttempts)
	}
	return nil
}

// Names holds the quoted SQL names derived from a validated table name.
type Names struct {
	// Raw is the validated table name as given.
	Raw string
	// Table is the quoted (possibly schema-qualified) table name.
	Table string
	// Schema is the quoted schema prefix with its dot ("" when unqualified).
	Schema string
	// Base is the unquoted table name without schema.
	Base string
	// ClaimIndex and KeyIndex are unquoted index names.
	ClaimIndex string
	KeyIndex   string
}

// NewNames derives Names with quote.
func NewNames(table string, quote func(string) string) Names {
	n := Names{Raw: table, Base: table}
	if i := strings.IndexByte(table, '.'); i >= 0 {
		n.Schema = quote(table[:i]) + "."
		n.Base = table[i+1:]
	}
	n.Table = n.Schema + quote(n.Base)
	n.ClaimIndex = n.Base + "_claim_idx"
	n.KeyIndex = n.Base + "_key_idx"
	return n
}

// ClaimParams are the inputs of a dialect's claim.
type ClaimParams struct {
	Now         string // FormatTime(now)
	LockedUntil string // FormatTime(now + lease)
	TokenPrefix string // the claim's random prefix; a message's token is prefix + id
	Limit       int
	Topics      []string
}

// Dialect supplies what differs between databases.
type Dialect struct {
	// Name is "sqlite", "postgres" or "mysql".
	Name string
	// Quote quotes one validated identifier part.
	Quote func(string) string
	// Translate classifies driver errors (see core.DBError).
	Translate func(error) error
	// Setup returns the CREATE TABLE / INDEX statements.
	Setup func(n Names) []string
	// Claim claims messages and returns the updated rows: both claimed
	// messages and ones it dead-lettered (status dead).
	Claim func(ctx context.Context, db bun.IDB, q *Queries, p ClaimParams) ([]Record, error)
	// Returning is true when DELETE/UPDATE ... RETURNING is available.
	Returning bool
	// IDHint, when set, follows the table name in the statements that find
	// rows by a list of IDs (Complete, Release and, without RETURNING, their
	// locking read), e.g. MySQL's " FORCE INDEX (PRIMARY)": with stale
	// statistics a planner may scan, and under REPEATABLE READ lock, the
	// whole table instead. DELETE then takes MySQL's multiple-table form,
	// the one that accepts index hints.
	IDHint string
	// Array, when set, makes Complete and Release pass their ID and token
	// lists as one array argument each (PostgreSQL: a text[] value, rendered
	// in one piece, where an IN list renders every element as an argument of
	// its own) and run the statements that return the lost claims rather than
	// the changed rows (see newQueries). PostgreSQL only: it needs Returning,
	// unnest and data-modifying WITH.
	Array func([]string) any
	// Insert, when set, renders Enqueue's INSERT of several rows (each in
	// Columns order) into table instead of a multi-row VALUES list
	// (PostgreSQL: one array per column, expanded by unnest).
	Insert func(table string, rows [][]any) (string, []any)
	// AfterEnqueue, when set, runs after a successful Enqueue in the same
	// handle (PostgreSQL's pg_notify).
	AfterEnqueue func(ctx context.Context, db bun.IDB, n Names, topics []string) error
	// WriteGate, when set, returns the gate that the outbox's writes on db
	// pass through (nil: none, e.g. when db is a transaction, whose writer
	// is already admitted). SQLite's serialises writers per database.
	WriteGate func(db bun.IDB) *txn.Gate
}

// Outbox is the shared implementation of ports.Outbox and ports.OutboxAdmin.
type Outbox struct {
	db      bun.IDB
	gate    *txn.Gate // the write gate of db; nil for none
	opts    Options
	dialect *Dialect
	q       *Queries
}

// New returns an outbox on db.
func New(db bun.IDB, opts Options, d *Dialect) (*Outbox, error) {
	if db == nil {
		return nil, core.Invalidf("outbox: nil database handle")
	}
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	o := &Outbox{db: db, opts: opts, dialect: d, q: newQueries(NewNames(opts.TableName, d.Quote), d.IDHint, d.Array != nil)}
	o.gate = txn.GateOf(d.WriteGate, db)
	return o, nil
}

// InTx reports whether db is a transaction (bun.Tx), so that what runs on
// it already commits or rolls back as one.
func InTx(db bun.IDB) bool {
	switch db.(type) {
	case bun.Tx, *bun.Tx:
		return true
	}
	return false
}

// SetupStatements returns the DDL for opts.
func SetupStatements(opts Options, d *Dialect) ([]string, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return d.Setup(NewNames(opts.TableName, d.Quote)), nil
}

// WithDB returns a copy bound to db (typically a transaction). Cheap: the
// SQL is shared.
func (o *Outbox) WithDB(db bun.IDB) *Outbox {
	c := *o
	c.db = db
	c.gate = txn.GateOf(o.dialect.WriteGate, db)
	return &c
}

// DB returns the bound handle.
func (o *Outbox) DB() bun.IDB { return o.db }

// Queries returns the prepared SQL texts (for dialect tests and EXPLAIN).
func (o *Outbox) Queries() *Queries { return o.q }

func (o *Outbox) now() time.Time { return core.Clock(o.opts.Now).Now() }

func (o *Outbox) wrap(op string, err error) error {
	return fmt.Errorf("outbox %s: %w", op, o.dialect.Translate(err))
}

// Enqueue implements ports.Outbox.
func (o *Outbox) Enqueue(ctx context.Context, msgs ...ports.OutboxMessage) ([]string, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	now := o.now()
	nowS := core.FormatTime(now)
	ids := make([]string, len(msgs))
	rows := make([][]any, len(msgs))
	topics := make([]string, 0, 1)
	for i, m := range msgs {
		row, err := o.prepare(m, now, nowS)
		if err != nil {
			return nil, fmt.Errorf("outbox enqueue: message %d: %w", i, err)
		}
		ids[i] = row[0].(string)
		rows[i] = row
		if !contains(topics, m.Topic) {
			topics = append(topics, m.Topic)
		}
	}
	ctx, leave, err := o.gate.EnterFor(ctx, "outbox", "enqueue")
	if err != nil {
		return nil, err
	}
	defer leave()
	// In the caller's transaction, that makes it all or none. Otherwise
	// several statements get one transaction of their own, so that a failure
	// stores nothing (one INSERT alone is atomic).
	if !InTx(o.db) && (len(rows) > enqueueChunk || o.dialect.AfterEnqueue != nil) {
		var inner error // insert's error, already wrapped
		err := o.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			inner = o.WithDB(tx).insert(ctx, rows, topics)
			return inner
		})
		if inner != nil {
			return nil, inner
		}
		if err != nil {
			return nil, o.wrap("enqueue", err) // BEGIN or COMMIT failed
		}
		return ids, nil
	}
	if err := o.insert(ctx, rows, topics); err != nil {
		return nil, err
	}
	return ids, nil
}

// insert writes rows in chunks on o's handle, then runs AfterEnqueue.
func (o *Outbox) insert(ctx context.Context, rows [][]any, topics []string) error {
	for start := 0; start < len(rows); start += enqueueChunk {
		end := min(start+enqueueChunk, len(rows))
		var query string
		var args []any
		if o.dialect.Insert != nil && end-start > 1 {
			query, args = o.dialect.Insert(o.q.n.Table, rows[start:end])
		} else {
			query, args = o.q.insert(rows[start:end])
		}
		if _, err := o.db.ExecContext(ctx, query, args...); err != nil {
			return o.wrap("enqueue", err)
		}
	}
	if o.dialect.AfterEnqueue != nil {
		if err := o.dialect.AfterEnqueue(ctx, o.db, o.q.n, topics); err != nil {
			return o.wrap("enqueue notify", err)
		}
	}
	return nil
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func (o *Outbox) prepare(m ports.OutboxMessage, now time.Time, nowS string) ([]any, error) {
	switch {
	case m.Topic == "":
		return nil, core.Invalidf("empty topic; every message needs a topic that routes it to a handler")
	case len(m.Payload) == 0:
		return nil, core.Invalidf("topic %q: nil payload; use a JSON value (at least {} or null)", m.Topic)
	case !json.Valid(m.Payload):
		return nil, core.Invalidf("topic %q: payload is not valid JSON", m.Topic)
	case m.MaxAttempts < 0:
		return nil, core.Invalidf("topic %q: MaxAttempts %d is negative; use 0 for the default", m.Topic, m.MaxAttempts)
	}
	if err := core.CheckLength("topic", m.Topic); err != nil {
		return nil, err
	}
	if err := core.CheckLength("key", m.Key); err != nil {
		return nil, err
	}
	if m.ID != "" {
		if err := core.CheckLength("id", m.ID); err != nil {
			return nil, err
		}
	}
	kind := m.Kind
	switch kind {
	case "":
		kind = ports.KindEvent
	case ports.KindEvent, ports.KindJob:
	default:
		return nil, core.Invalidf("topic %q: unknown kind %q; use %q or %q", m.Topic, kind, ports.KindEvent, ports.KindJob)
	}
	id := m.ID
	if id == "" {
		id = core.NewID()
	}
	maxAttempts := m.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = o.opts.DefaultMaxAttempts
	}
	availableAt := nowS
	if !m.AvailableAt.IsZero() {
		availableAt = core.FormatTime(m.AvailableAt)
	}
	var headers, key any
	if len(m.Headers) > 0 {
		b, err := json.Marshal(m.Headers)
		if err != nil {
			return nil, fmt.Errorf("topic %q: encode headers: %w", m.Topic, err)
		}
		headers = string(b)
	}
	if m.Key != "" {
		key = m.Key
	}
	_ = now
	return []any{id, string(kind), m.Topic, key, string(m.Payload), headers, string(ports.StatusPending),
		0, maxAttempts, availableAt, nil, nil, nil, nowS, nowS}, nil
}

// deadlockRetries is how many times a statement or short transaction of
// the outbox's own on the root handle that the database chose as a
// deadlock victim is run again before the deadlock reaches the caller.
const deadlockRetries = 3

// againOnDeadlock runs fn, again when the database rolled it back as a
// deadlock victim, if the outbox is bound to the root handle (*bun.DB).
// There fn is its own transaction (or one statement), and a deadlock rolls
// all of it back, so running it again is safe; claimers and completers that
// skip each other's rows meet in a deadlock only in rare interleavings
// (MariaDB), and the next run almost always succeeds. On any other handle
// (a transaction, a connection, a wrapper) the deadlock may have rolled
// back the caller's work too, and a second run would commit on its own: it
// is returned at once, for the caller's unit of work to re-run.
func (o *Outbox) againOnDeadlock(ctx context.Context, op string, fn func() error) error {
	_, root := o.db.(*bun.DB)
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || !root || attempt == deadlockRetries ||
			!errors.Is(o.dialect.Translate(err), ports.ErrDeadlock) {
			return err
		}
		o.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "outbox: deadlock victim, running again",
			slog.String("op", op), slog.Int("attempt", attempt+1))
		// A short random pause (0.5 to 1.5 ms, doubling), so that the
		// transactions that met do not meet again at once.
		base := 500 * time.Microsecond << attempt
		t := time.NewTimer(base + time.Duration(rand.Int64N(int64(2*base))))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while waiting to run again after a deadlock: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Claim implements ports.Outbox.
func (o *Outbox) Claim(ctx context.Context, opts ports.ClaimOptions) ([]ports.ClaimedMessage, error) {
	if opts.Limit <= 0 {
		return nil, fmt.Errorf("outbox claim: %w", core.Invalidf("Limit %d must be positive", opts.Limit))
	}
	if opts.Lease <= 0 {
		return nil, fmt.Errorf("outbox claim: %w", core.Invalidf("Lease %v must be positive", opts.Lease))
	}
	ctx, leave, err := o.gate.EnterFor(ctx, "outbox", "claim")
	if err != nil {
		return nil, err
	}
	defer leave()
	now := o.now()
	p := ClaimParams{
		Now:         core.FormatTime(now),
		LockedUntil: core.FormatTime(now.Add(opts.Lease)),
		TokenPrefix: core.NewToken() + ":",
		Limit:       opts.Limit,
		Topics:      opts.Topics,
	}
	msgs := make([]ports.ClaimedMessage, 0, opts.Limit)
	var deadIDs []string
	// Rows dead-lettered by the claim (lease expired on the final attempt)
	// count against the limit; claim again so they never hide ready work.
	// Every such round dead-letters at least one row for good, so the loop
	// ends.
	for {
		var recs []Record
		err := o.againOnDeadlock(ctx, "claim", func() (err error) {
			recs, err = o.dialect.Claim(ctx, o.db, o.q, p)
			return err
		})
		if err != nil {
			return nil, o.wrap("claim", err)
		}
		dead := 0
		for i := range recs {
			if recs[i].Status == ports.StatusDead {
				deadIDs = append(deadIDs, recs[i].ID)
				dead++
				continue
			}
			msgs = append(msgs, recs[i].Claimed())
		}
		if dead == 0 || len(msgs) >= opts.Limit {
			break
		}
		p.Limit = opts.Limit - len(msgs)
	}
	// RETURNING and read-backs give rows in no defined order; hand them out in
	// claim order.
	slices.SortFunc(msgs, func(a, b ports.ClaimedMessage) int {
		if c := a.AvailableAt.Compare(b.AvailableAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(deadIDs) > 0 {
		o.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox messages dead-lettered: lease expired on final attempt",
			slog.Int("count", len(deadIDs)), slog.String("first_id", deadIDs[0]))
	}
	return msgs, nil
}
