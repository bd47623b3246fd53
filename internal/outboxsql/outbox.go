// Package outboxsql is the outbox shared by every provider: validation,
// enqueue, retry, dead letters, extension, admin queries and row scanning
// are written once here; a Dialect, implemented by each provider, supplies
// the claim, the settlement of Complete and Release, the insert and the
// notifications that differ (the DDL is in the providers' migrations).
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/querylog"
	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
)

// Defaults.
const (
	DefaultTableName   = "outbox_messages"
	DefaultMaxAttempts = 10
	// LeaseExpiredError is the last error of a message dead-lettered because
	// its lease expired on its final attempt.
	LeaseExpiredError = "lease expired on the final attempt (worker crashed or too slow)"
)

// Dialect is a provider's outbox strategy.
type Dialect interface {
	sqlbase.Dialect
	// Claim claims messages as ports.Outbox.Claim describes and returns the
	// rows it changed: claimed messages and messages it dead-lettered
	// (status dead) because their lease expired on the final attempt.
	Claim(ctx context.Context, db bun.IDB, q *Queries, p ClaimParams) ([]Record, error)
	// Settle applies s (Complete or Release) to the messages whose claims
	// s names and still hold them, all or none, and returns the IDs of the
	// claims it could not apply.
	Settle(ctx context.Context, db bun.IDB, q *Queries, s Settlement) (lost []string, err error)
	// Insert writes rows (each in Columns order) in one statement; when db
	// commits, the dialect's listeners (Listen) are woken. topics nil (only
	// ever passed to a Notifier) leaves that to a Notify after the commit.
	Insert(ctx context.Context, db bun.IDB, q *Queries, rows [][]any, topics []string) error
	// MaxInsertRows bounds the rows of one Insert (0: no bound).
	MaxInsertRows() int
	// Behind returns the available_at of the first claimable message before
	// before, in claim order (see Queries.Behind), read without locks; ""
	// when there is none.
	Behind(ctx context.Context, db bun.IDB, q *Queries, p ClaimParams, before string) (string, error)
	// Listen returns a channel that receives a value after other processes
	// committed messages to q's table, or a nil channel when the database
	// cannot tell (see ports.OutboxNotifier for the contract).
	Listen(ctx context.Context, q *Queries) (<-chan struct{}, error)
}

// Notifier is implemented by a dialect whose listeners (Listen) can be
// woken by a statement of its own (PostgreSQL's pg_notify).
type Notifier interface {
	// Notify wakes the listeners of q's table: messages were committed to
	// it. It runs on db, the pool, outside any transaction.
	Notify(ctx context.Context, db bun.IDB, q *Queries) error
}

// Config configures an outbox.
type Config struct {
	// TableName is the table's name, "" for DefaultTableName.
	TableName string
	// Now is the clock of every time comparison; nil means time.Now.
	Now func() time.Time
	// DefaultMaxAttempts applies to messages enqueued with MaxAttempts 0;
	// zero means DefaultMaxAttempts.
	DefaultMaxAttempts int
	// Logger must not be nil.
	Logger *slog.Logger
	// Dialect names the database for Hooks.
	Dialect string
	// Hooks observe Enqueue and Claim, and inject the trace context into
	// enqueued messages' headers.
	Hooks core.Hooks
}

// Outbox is the shared implementation of ports.Outbox, ports.OutboxAdmin
// and ports.OutboxNotifier.
type Outbox struct {
	db      bun.IDB
	gate    *sqlbase.Gate // the write gate of db; nil for none
	cfg     Config
	dialect Dialect
	q       *Queries
	local   *wakeups  // shared with every copy made by WithDB
	cur     *cursors  // shared with every copy made by WithDB
	dueWake *dueWakes // shared with every copy made by WithDB
	// root is the outbox New returned (on its handle, normally the pool),
	// shared with every copy made by WithDB: sweeps run on it, never on a
	// copy's transaction.
	root *Outbox
	// enqueued is set by an Enqueue in a transaction (a copy of WithDB's),
	// so that the unit of work wakes the relays after its commit.
	enqueued *atomic.Bool
	// remote sends the database notifications that enqueues in announced
	// transactions leave to the commit (nil unless the dialect is a
	// Notifier); shared with every copy made by WithDB.
	remote *announcer
	// announced marks a copy whose transaction's commit is announced with
	// Committed (AnnounceCommit); unannounced marks an enqueue through it
	// whose notification is still to be sent.
	announced   bool
	unannounced *atomic.Bool
	// stamped holds the time (UnixNano, outbox clock) of the first enqueue
	// through a copy bound to a transaction, 0 before it: a commit that
	// comes later than CursorWindow after it moves the claim cursors back
	// to it (Committed), since the claims may have passed that position.
	stamped *atomic.Int64
}

// New returns an outbox on db. An invalid configuration is an error
// matching ports.ErrInvalidArgument.
func New(db bun.IDB, cfg Config, d Dialect) (*Outbox, error) {
	if db == nil {
		return nil, check.Invalidf("outbox: nil database handle")
	}
	q, err := NewQueries(cfg.TableName, d)
	if err != nil {
		return nil, err
	}
	if cfg.DefaultMaxAttempts < 0 {
		return nil, check.Invalidf("outbox DefaultMaxAttempts %d is negative; use 0 for the default (%d)", cfg.DefaultMaxAttempts, DefaultMaxAttempts)
	}
	if cfg.DefaultMaxAttempts == 0 {
		cfg.DefaultMaxAttempts = DefaultMaxAttempts
	}
	o := &Outbox{db: db, gate: d.Gate(db), cfg: cfg, dialect: d, q: q, local: newWakeups(), cur: newCursors(), dueWake: &dueWakes{}}
	o.root = o
	if n, ok := d.(Notifier); ok {
		o.remote = &announcer{notify: func(ctx context.Context) error { return n.Notify(ctx, db, q) }, life: o.cur.life, log: cfg.Logger, table: q.n.Raw}
	}
	return o, nil
}

// WithDB returns a copy bound to db (typically a transaction). Cheap: the
// SQL and the wake-ups are shared.
func (o *Outbox) WithDB(db bun.IDB) *Outbox {
	c := *o
	c.db = db
	c.gate = o.dialect.Gate(db)
	c.enqueued = new(atomic.Bool)
	c.announced, c.unannounced = false, nil
	c.stamped = new(atomic.Int64)
	return &c
}

// AnnounceCommit tells a copy bound to a transaction (WithDB) that its
// caller calls Committed on it once the transaction has committed, as a
// unit of work does. Enqueues through it then leave the database
// notification of other processes' relays (PostgreSQL's NOTIFY) to
// Committed, which sends one for all the commits that happen while it is
// on its way: NOTIFY in a transaction serialises the commits of every
// transaction that notifies, so that notifying in each of many concurrent
// producers' transactions costs most of their throughput (BENCHMARKS.md).
// The relays are still woken only after the commit, never after a
// rollback.
func (o *Outbox) AnnounceCommit() {
	if o.remote != nil && sqlbase.InTx(o.db) {
		o.announced = true
		o.unannounced = new(atomic.Bool)
	}
}

// announceCommit sends the database notification that enqueues through o
// left to the commit, if any (see AnnounceCommit).
func (o *Outbox) announceCommit() {
	if o.unannounced != nil && o.unannounced.Swap(false) {
		o.remote.announce()
	}
}

// announcer sends coalesced notifications: announce starts a Notify unless
// one is on its way, in which case another follows it, covering every
// announce made meanwhile.
type announcer struct {
	notify func(context.Context) error
	life   context.Context // ends when the outbox is closed
	log    *slog.Logger
	table  string

	mu               sync.Mutex
	pending, running bool
}

// notifyTimeout bounds one coalesced Notify.
const notifyTimeout = 10 * time.Second

func (a *announcer) announce() {
	a.mu.Lock()
	a.pending = true
	start := !a.running
	a.running = true
	a.mu.Unlock()
	if start {
		go a.run()
	}
}

// run sends notifications while announcements are pending.
func (a *announcer) run() {
	for {
		a.mu.Lock()
		if !a.pending || a.life.Err() != nil {
			a.running = false
			a.mu.Unlock()
			return
		}
		a.pending = false
		a.mu.Unlock()
		ctx, cancel := context.WithTimeout(querylog.WithPort(a.life, "outbox.notify"), notifyTimeout)
		err := a.notify(ctx)
		cancel()
		if err != nil && a.life.Err() == nil {
			// Other processes' relays find the messages at their next poll.
			a.log.LogAttrs(ctx, slog.LevelWarn, "outbox: notifying other processes of committed messages failed; their relays poll for them",
				slog.String("table", a.table), slog.String("error", err.Error()))
		}
	}
}

// Enqueued reports whether messages were enqueued through this copy in a
// transaction (whose commit is the caller's to announce with Committed).
func (o *Outbox) Enqueued() bool { return o.enqueued != nil && o.enqueued.Load() }

// Queries returns the outbox's SQL texts and names.
func (o *Outbox) Queries() *Queries { return o.q }

func (o *Outbox) now() time.Time { return core.Clock(o.cfg.Now).Now() }

func (o *Outbox) wrap(op string, err error) error {
	return fmt.Errorf("outbox %s: %w", op, o.dialect.Translate(err))
}

// Enqueue implements ports.Outbox. On the root handle the messages' commit
// wakes this process's relays at once; in a transaction, the unit of work
// calls Committed after its commit.
func (o *Outbox) Enqueue(ctx context.Context, msgs ...ports.OutboxMessage) ([]string, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	ctx, end := o.cfg.Hooks.StartOp(ctx, func() core.Operation {
		op := core.Operation{Kind: core.OpEnqueue, Dialect: o.cfg.Dialect, Table: o.q.n.Raw, Count: len(msgs), Topics: make([]string, len(msgs))}
		for i, m := range msgs {
			op.Topics[i] = m.Topic
		}
		return op
	})
	ids, err := o.enqueue(ctx, msgs)
	end(core.End{Err: err})
	return ids, err
}

// enqueue is Enqueue once observed.
func (o *Outbox) enqueue(ctx context.Context, msgs []ports.OutboxMessage) ([]string, error) {
	ctx = querylog.WithPort(ctx, "outbox.enqueue")
	now := o.now()
	nowS := core.FormatTime(now)
	ids := make([]string, len(msgs))
	rows := make([][]any, len(msgs))
	topics := make([]string, 0, 1)
	for i, m := range msgs {
		if inject := o.cfg.Hooks.Inject; inject != nil {
			m.Headers = injected(ctx, inject, m.Headers)
		}
		row, err := o.prepare(m, nowS)
		if err != nil {
			return nil, fmt.Errorf("outbox enqueue: message %d: %w", i, err)
		}
		ids[i] = row[0].(string)
		rows[i] = row
		if !slices.Contains(topics, m.Topic) {
			topics = append(topics, m.Topic)
		}
		if !m.AvailableAt.IsZero() && m.AvailableAt.Before(now) {
			o.cur.rewind(m.AvailableAt) // claimable behind the cursor
		}
	}
	ctx, leave, err := o.gate.EnterFor(ctx, "outbox", "enqueue")
	if err != nil {
		return nil, err
	}
	defer leave()
	inTx := sqlbase.InTx(o.db)
	if limit := o.dialect.MaxInsertRows(); !inTx && limit > 0 && len(rows) > limit {
		// Several statements: one transaction of their own, so that a
		// failure stores nothing (the caller's transaction does that
		// otherwise).
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
	} else {
		notifyTopics := topics
		if o.announced {
			notifyTopics = nil // Committed notifies (AnnounceCommit)
		}
		if err := o.insert(ctx, rows, notifyTopics); err != nil {
			return nil, err
		}
		if o.announced {
			o.unannounced.Store(true)
		}
	}
	if inTx {
		if o.enqueued != nil {
			o.enqueued.Store(true)
		}
		if o.stamped != nil {
			o.stamped.CompareAndSwap(0, now.UnixNano())
		}
	} else {
		o.Committed()
	}
	return ids, nil
}

// injected returns the headers of a message with the trace context of ctx
// added; the message's own headers win.
func injected(ctx context.Context, inject func(context.Context, map[string]string), own map[string]string) map[string]string {
	h := make(map[string]string, len(own)+3)
	inject(ctx, h)
	for k, v := range own {
		h[k] = v
	}
	return h
}

// insert writes rows in chunks of the dialect's MaxInsertRows on o's handle.
func (o *Outbox) insert(ctx context.Context, rows [][]any, topics []string) error {
	chunk := o.dialect.MaxInsertRows()
	if chunk <= 0 {
		chunk = len(rows)
	}
	for start := 0; start < len(rows); start += chunk {
		end := min(start+chunk, len(rows))
		if err := o.dialect.Insert(ctx, o.db, o.q, rows[start:end], topics); err != nil {
			return o.wrap("enqueue", err)
		}
	}
	return nil
}

// prepare validates m and returns its row in Columns order.
func (o *Outbox) prepare(m ports.OutboxMessage, nowS string) ([]any, error) {
	switch {
	case m.Topic == "":
		return nil, check.Invalidf("empty topic; every message needs a topic that routes it to a handler")
	case len(m.Payload) == 0:
		return nil, check.Invalidf("topic %q: nil payload; use a JSON value (at least {} or null)", m.Topic)
	case !json.Valid(m.Payload):
		return nil, check.Invalidf("topic %q: payload is not valid JSON", m.Topic)
	case m.MaxAttempts < 0:
		return nil, check.Invalidf("topic %q: MaxAttempts %d is negative; use 0 for the default", m.Topic, m.MaxAttempts)
	}
	if err := check.Length("topic", m.Topic); err != nil {
		return nil, err
	}
	if err := check.Length("key", m.Key); err != nil {
		return nil, err
	}
	if err := check.Length("id", m.ID); err != nil {
		return nil, err
	}
	kind := m.Kind
	switch kind {
	case "":
		kind = ports.KindEvent
	case ports.KindEvent, ports.KindJob:
	default:
		return nil, check.Invalidf("topic %q: unknown kind %q; use %q or %q", m.Topic, kind, ports.KindEvent, ports.KindJob)
	}
	id := m.ID
	if id == "" {
		id = core.NewID()
	}
	maxAttempts := m.MaxAttempts
	if maxAttempts == 0 {
		maxAttempts = o.cfg.DefaultMaxAttempts
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
// all of it back, so running it again is safe. On any other handle (a
// transaction, a connection, a wrapper) the deadlock may have rolled back
// the caller's work too, and a second run would commit on its own: it is
// returned at once, for the caller's unit of work to re-run.
func (o *Outbox) againOnDeadlock(ctx context.Context, op string, fn func() error) error {
	_, root := o.db.(*bun.DB)
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || !root || attempt == deadlockRetries ||
			!errors.Is(o.dialect.Translate(err), ports.ErrDeadlock) {
			return err
		}
		o.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "outbox: deadlock victim, running again",
			slog.String("op", op), slog.Int("attempt", attempt+1))
		// A short random pause (0.5 to 1.5 ms, doubling), so that the
		// transactions that met do not meet again at once.
		base := 500 * time.Microsecond << attempt
		t := time.NewTimer(base + rand.N(2*base))
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
		return nil, fmt.Errorf("outbox claim: %w", check.Invalidf("Limit %d must be positive", opts.Limit))
	}
	if opts.Lease <= 0 {
		return nil, fmt.Errorf("outbox claim: %w", check.Invalidf("Lease %v must be positive", opts.Lease))
	}
	ctx, end := o.cfg.Hooks.StartOp(ctx, func() core.Operation {
		return core.Operation{Kind: core.OpClaim, Dialect: o.cfg.Dialect, Table: o.q.n.Raw, Count: opts.Limit, Topics: opts.Topics}
	})
	msgs, err := o.claim(ctx, opts)
	end(core.End{Err: err, Count: len(msgs)})
	return msgs, err
}

// claim is Claim once observed.
func (o *Outbox) claim(ctx context.Context, opts ports.ClaimOptions) ([]ports.ClaimedMessage, error) {
	ctx = querylog.WithPort(ctx, "outbox.claim")
	ctx, leave, err := o.gate.EnterFor(ctx, "outbox", "claim")
	if err != nil {
		return nil, err
	}
	defer leave()
	now := o.now()
	topics := topicsKey(opts.Topics)
	from, sweep, rewinds := o.cur.from(topics, now)
	if sweep {
		go o.root.sweep(topics, opts.Topics, now, from) // on the pool, never on o's transaction
	}
	p := ClaimParams{
		Now:         core.FormatTime(now),
		LockedUntil: core.FormatTime(now.Add(opts.Lease)),
		TokenPrefix: sqlbase.NewToken() + ":",
		Limit:       opts.Limit,
		Topics:      opts.Topics,
		From:        from,
	}
	var msgs []ports.ClaimedMessage
	var deadIDs []string
	cursorLimit := opts.Limit // what the cursor takes the claim's limit to be
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
			if len(msgs) > 0 && !sqlbase.InTx(o.db) {
				// An earlier round's claim committed: hand out what it
				// leased rather than leave it locked until the lease ends.
				o.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox: claim round after dead-lettering failed; returning the messages already claimed",
					slog.String("table", o.q.n.Raw), slog.Int("claimed", len(msgs)), slog.String("error", o.dialect.Translate(err).Error()))
				cursorLimit = len(msgs) // as a full claim: the cursor stays at the last message claimed
				break
			}
			return nil, o.wrap("claim", err)
		}
		dead := 0
		for i := range recs {
			if recs[i].Status == ports.StatusDead {
				dead++
			}
		}
		if msgs == nil && len(recs) > dead {
			// Room for exactly this round's messages (a claim woken by one
			// commit gets one or two, not Limit).
			msgs = make([]ports.ClaimedMessage, 0, len(recs)-dead)
		}
		for i := range recs {
			if recs[i].Status == ports.StatusDead {
				deadIDs = append(deadIDs, recs[i].ID)
				continue
			}
			msgs = append(msgs, recs[i].Claimed())
		}
		releaseRecords(recs)
		if dead == 0 || len(msgs) >= opts.Limit {
			break
		}
		p.Limit = opts.Limit - len(msgs)
	}
	if msgs == nil {
		msgs = []ports.ClaimedMessage{} // empty, not nil, as always
	}
	// RETURNING and read-backs give rows in no defined order; hand them out
	// in claim order.
	slices.SortFunc(msgs, func(a, b ports.ClaimedMessage) int {
		if c := a.AvailableAt.Compare(b.AvailableAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	o.cur.claimed(topics, now, rewinds, cursorLimit, msgs)
	if len(deadIDs) > 0 {
		o.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox messages dead-lettered: lease expired on final attempt",
			slog.Int("count", len(deadIDs)), slog.String("first_id", deadIDs[0]))
	}
	return msgs, nil
}
