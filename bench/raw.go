package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/wharf-go/wharf/core"
)

// The raw baseline: wharf's statements, written out by hand (rawsql.go),
// issued directly through database/sql and the driver on a pool of its own,
// prepared once, without bun, validation or the relay. It is the practical
// ceiling for wharf's design on each database.

func init() {
	cases["enqueue/raw"] = rawEnqueue
	cases["drain/raw"] = rawDrain
	cases["e2e/raw"] = rawE2E
}

type rawStore struct {
	retries atomic.Int64 // MySQL deadlocks retried
	db      *sql.DB
	dialect string
	q       rawSQL
	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
	// notify is how PostgreSQL's enqueues notify listeners: notifyAfter,
	// as wharf's unit of work does, notifyInStatement (pg_notify in the
	// INSERT, as wharf's root-handle Enqueue and wharf before coalescing),
	// or notifyNone.
	notify int
	after  *rawAnnouncer
	// cursor is the claim cursor (under mu): where the last claim ended.
	cursor time.Time
	// local wakes this process's consumers after a producer's commit, as
	// wharf's outbox does (e2e).
	local *waker
	// timed.claims holds the claims' latencies (under mu).
	timed timedOutbox
}

func openRawStore(ctx context.Context, s Spec, conns int) (*rawStore, error) {
	db, err := openRaw(ctx, s.Dialect, s.URL, conns)
	if err != nil {
		return nil, err
	}
	st := &rawStore{db: db, dialect: s.Dialect, q: newRawSQL(s.Dialect, rawTable), stmts: map[string]*sql.Stmt{}}
	switch {
	case s.Dialect != "postgres" || s.Impl == "raw-nonotify":
		st.notify = notifyNone
	case s.Impl == "raw-instmt":
		st.notify = notifyInStatement
	default:
		st.notify = notifyAfter
		st.after = &rawAnnouncer{db: db}
	}
	return st, nil
}

func (st *rawStore) Close() {
	for _, s := range st.stmts {
		s.Close()
	}
	st.db.Close()
}

func (st *rawStore) stmt(ctx context.Context, text string) (*sql.Stmt, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if s := st.stmts[text]; s != nil {
		return s, nil
	}
	s, err := st.db.PrepareContext(ctx, text)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w\n%s", err, text)
	}
	st.stmts[text] = s
	return s, nil
}

// rawNotifyChannel is postgres.NotifyChannel(rawTable).
const rawNotifyChannel = "wharf_outbox_raw_outbox"

// enqueue inserts n messages in one transaction: one multi-row statement
// (10-row statements on SQLite, see insertChunk); on PostgreSQL with
// notify, the statement notifies too, as wharf's Insert does. After the
// commit it wakes this process's consumers (st.local).
func (st *rawStore) enqueue(ctx context.Context, seq, n int, t int64) error {
	chunk := insertChunk(st.dialect, n)
	ins, err := st.stmt(ctx, st.insertText(chunk))
	if err != nil {
		return err
	}
	now := core.FormatTime(time.Now())
	args := make([]any, 0, n*15+2)
	for i := 0; i < n; i++ {
		args = insertArgs(args, core.NewID(), payload(seq+i, t), now)
	}
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	txIns := tx.StmtContext(ctx, ins)
	for off := 0; off < n; off += chunk {
		if off+chunk > n {
			if txIns, err = st.txStmt(ctx, tx, st.insertText(n-off)); err != nil {
				tx.Rollback()
				return err
			}
		}
		a := args[off*15 : min(n, off+chunk)*15]
		if st.notify == notifyInStatement {
			a = append(a, rawNotifyChannel, benchTopic)
		}
		if _, err := txIns.ExecContext(ctx, a...); err != nil {
			tx.Rollback()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if st.local != nil {
		st.local.wake()
	}
	if st.after != nil {
		st.after.announce()
	}
	return nil
}

// How a raw PostgreSQL enqueue notifies (rawStore.notify).
const (
	notifyNone = iota
	notifyInStatement
	notifyAfter
)

// rawAnnouncer sends coalesced notifications after commits, as wharf's
// outbox does for units of work: one pg_notify (not waiting for its commit
// to be flushed) at a time, another after it for every commit meanwhile.
type rawAnnouncer struct {
	db               *sql.DB
	mu               sync.Mutex
	pending, running bool
}

func (a *rawAnnouncer) announce() {
	a.mu.Lock()
	a.pending = true
	start := !a.running
	a.running = true
	a.mu.Unlock()
	if start {
		go a.run()
	}
}

func (a *rawAnnouncer) run() {
	for {
		a.mu.Lock()
		if !a.pending {
			a.running = false
			a.mu.Unlock()
			return
		}
		a.pending = false
		a.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		a.db.ExecContext(ctx, "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, '')", rawNotifyChannel)
		cancel()
	}
}

// insertText is the INSERT of rows messages (with pg_notify when notify).
func (st *rawStore) insertText(rows int) string {
	ins := st.q.insert(rows)
	if st.notify != notifyInStatement {
		return ins
	}
	return fmt.Sprintf("WITH ins AS (%s) SELECT pg_notify($%d, $%d)", ins, rows*15+1, rows*15+2)
}

func (st *rawStore) txStmt(ctx context.Context, tx *sql.Tx, text string) (*sql.Stmt, error) {
	s, err := st.stmt(ctx, text)
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, s), nil
}

type rawMsg struct {
	id, token string
	payload   []byte
}

// scanRaw reads a claim's rows: every column (cols 15: SQLite) or
// claimColumns (12: the token is prefix + id). It returns the rows still
// pending (not dead-lettered by the claim) and the greatest available_at.
func scanRaw(rows *sql.Rows, out []rawMsg, cols int, prefix string) ([]rawMsg, string, error) {
	defer rows.Close()
	var last string
	for rows.Next() {
		var (
			m                                  rawMsg
			kind, topic, status                string
			key, headers, locked, token, lastE sql.NullString
			attempts, maxAttempts              int
			avail, created, updated            string
		)
		var err error
		if cols == 15 {
			err = rows.Scan(&m.id, &kind, &topic, &key, &m.payload, &headers, &status, &attempts, &maxAttempts,
				&avail, &locked, &token, &lastE, &created, &updated)
			m.token = token.String
		} else {
			err = rows.Scan(&m.id, &kind, &topic, &key, &m.payload, &headers, &status, &attempts, &maxAttempts,
				&avail, &lastE, &created)
			m.token = prefix + m.id
		}
		if err != nil {
			return nil, "", err
		}
		if avail > last {
			last = avail
		}
		if status != "pending" {
			continue // dead-lettered by the claim
		}
		out = append(out, m)
	}
	return out, last, rows.Err()
}

// isDeadlock reports MySQL's deadlock and lock wait timeout errors, which a
// practical claimer retries.
func isDeadlock(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// claim claims up to limit messages, retrying deadlocks, and records its
// latency.
func (st *rawStore) claim(ctx context.Context, limit int, lease time.Duration) ([]rawMsg, error) {
	start := time.Now()
	defer func() {
		d := time.Since(start)
		st.mu.Lock()
		st.timed.claims = append(st.timed.claims, d)
		st.mu.Unlock()
	}()
	for {
		msgs, err := st.claimOnce(ctx, limit, lease)
		if err == nil || !isDeadlock(err) || ctx.Err() != nil {
			return msgs, err
		}
		st.retries.Add(1)
	}
}

// complete completes msgs, retrying deadlocks.
func (st *rawStore) complete(ctx context.Context, msgs []rawMsg) error {
	for {
		err := st.completeOnce(ctx, msgs)
		if err == nil || !isDeadlock(err) || ctx.Err() != nil {
			return err
		}
		st.retries.Add(1)
	}
}

// cursorWindow is outboxsql.CursorWindow: claims scan from this much before
// where the last one ended.
const cursorWindow = 250 * time.Millisecond

// from returns the claim cursor's bound ("" before the first claim).
func (st *rawStore) from() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cursor.IsZero() {
		return ""
	}
	return core.FormatTime(st.cursor.Add(-cursorWindow))
}

// moveCursor moves the claim cursor after a claim at now that got n of
// limit rows, the last at available_at last, as the library's cursor does
// (no rewinds: the raw baseline never releases or retries).
func (st *rawStore) moveCursor(now time.Time, n, limit int, last string) {
	next := now
	if n >= limit && last != "" {
		if t, err := core.ParseTime(last); err == nil {
			next = t
		}
	}
	st.mu.Lock()
	st.cursor = next
	st.mu.Unlock()
}

func (st *rawStore) claimOnce(ctx context.Context, limit int, lease time.Duration) ([]rawMsg, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	nowS, until, prefix := core.FormatTime(now), core.FormatTime(now.Add(lease)), newToken()+":"
	out := make([]rawMsg, 0, limit)
	cl, err := st.stmt(ctx, native(st.dialect, st.q.claim()))
	if err != nil {
		return nil, err
	}
	from := st.from()
	if st.dialect != "mysql" {
		rows, err := cl.QueryContext(ctx, st.q.claimArgs(prefix, until, nowS, from, limit)...)
		if err != nil {
			return nil, err
		}
		cols := 12
		if st.dialect == "sqlite" {
			cols = 15
		}
		out, last, err := scanRaw(rows, out, cols, prefix)
		if err == nil {
			st.moveCursor(now, len(out), limit, last)
		}
		return out, err
	}
	// As providers/mysql: a READ COMMITTED transaction that finds where the
	// claimable rows begin, locks the eligible rows from there (reading
	// what the claim returns) and updates them.
	tx, err := st.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	hd, err := st.stmt(ctx, native("mysql", st.q.head()))
	if err != nil {
		return nil, err
	}
	var head string
	err = tx.StmtContext(ctx, hd).QueryRowContext(ctx, nowS, nowS, from).Scan(&head)
	if errors.Is(err, sql.ErrNoRows) {
		st.moveCursor(now, 0, limit, "")
		return out, tx.Commit()
	}
	if err != nil {
		return nil, err
	}
	rows, err := tx.StmtContext(ctx, cl).QueryContext(ctx, st.q.claimArgs(prefix, until, nowS, head, limit)...)
	if err != nil {
		return nil, err
	}
	out, last, err := scanRaw(rows, out, 12, prefix)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		st.moveCursor(now, 0, limit, "")
		return out, tx.Commit()
	}
	ids := make([]any, len(out))
	for i, m := range out {
		ids[i] = m.id
	}
	set := setArgs(prefix, until, nowS)
	counts := make([]int, len(set)+1)
	for i := range counts {
		counts[i] = 1
	}
	counts[len(counts)-1] = len(ids)
	upd, err := st.stmt(ctx, native("mysql", st.q.claimUpdate(), counts...))
	if err != nil {
		return nil, err
	}
	if _, err := tx.StmtContext(ctx, upd).ExecContext(ctx, append(set, ids...)...); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	st.moveCursor(now, len(out), limit, last)
	return out, nil
}

func (st *rawStore) completeOnce(ctx context.Context, msgs []rawMsg) error {
	if len(msgs) == 0 {
		return nil
	}
	// wharf's complete (DELETE ... WHERE id IN (...) AND claim_token IN
	// (...)), checked by its row count instead of RETURNING or a locking
	// read: every claim is expected to be held.
	s, err := st.stmt(ctx, native(st.dialect, st.q.complete(), len(msgs), len(msgs)))
	if err != nil {
		return err
	}
	args := make([]any, 2*len(msgs))
	for i, m := range msgs {
		args[i], args[len(msgs)+i] = m.id, m.token
	}
	res, err := s.ExecContext(ctx, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(len(msgs)) {
		return fmt.Errorf("complete: %d of %d claims held (%v)", n, len(msgs), err)
	}
	return nil
}

func rawEnqueue(ctx context.Context, s Spec, r *Result) error {
	st, err := openRawStore(ctx, s, producersFor(s)+2)
	if err != nil {
		return err
	}
	defer st.Close()
	r.Notes = append(r.Notes, fmt.Sprintf("prepared %d-row INSERTs in one transaction", insertChunk(s.Dialect, s.MsgsPerTx))+
		map[int]string{notifyNone: "", notifyInStatement: " (WITH ins AS (INSERT ...) SELECT pg_notify)", notifyAfter: "; pg_notify after the commits, coalesced"}[st.notify])
	return runEnqueue(ctx, s, r, func(ctx context.Context, seq int) error {
		return st.enqueue(ctx, seq, s.MsgsPerTx, time.Now().UnixNano())
	})
}

func rawDrain(ctx context.Context, s Spec, r *Result) error {
	st, err := openRawStore(ctx, s, s.Workers+2)
	if err != nil {
		return err
	}
	defer st.Close()
	r.Notes = append(r.Notes, "claim: "+native(s.Dialect, st.q.claim()), "complete: "+native(s.Dialect, st.q.complete(), 2, 2))
	// Prepare outside the timing.
	if _, err := st.stmt(ctx, native(st.dialect, st.q.complete(), s.Cfg.Batch, s.Cfg.Batch)); err != nil {
		return err
	}
	heap := startHeapSampler()
	var handled atomic.Int64
	cpu0 := cpuStart()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for i := 0; i < s.Workers; i++ {
		g.Go(func() error {
			for {
				msgs, err := st.claim(gctx, s.Cfg.Batch, s.Cfg.Lease)
				if err != nil {
					return fmt.Errorf("claim: %w", err)
				}
				if len(msgs) == 0 {
					return nil
				}
				for range msgs {
					handled.Add(1) // no-op handler
				}
				if err := st.complete(gctx, msgs); err != nil {
					return err
				}
			}
		})
	}
	err = g.Wait()
	el := time.Since(start)
	r.PeakHeapMiB = heap.Stop()
	r.Messages, r.Seconds = handled.Load(), el.Seconds()
	r.MsgsPerSec = float64(r.Messages) / el.Seconds()
	r.setCPU(cpu0, r.Messages)
	st.noteRetries(r)
	st.timed.fill(r)
	if err != nil {
		return err
	}
	return verifyDrained(ctx, st.db, s, rawTable, r.Messages)
}

func (st *rawStore) noteRetries(r *Result) {
	if n := st.retries.Load(); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d deadlocked claim/complete statements retried", n))
	}
}

func verifyDrained(ctx context.Context, db *sql.DB, s Spec, table string, handled int64) error {
	left, err := countRows(ctx, db, s.Dialect, table)
	if err != nil {
		return err
	}
	if left != 0 || handled != int64(s.Expect) {
		return fmt.Errorf("not drained: %d rows left, %d of %d handled", left, handled, s.Expect)
	}
	return nil
}

// waker wakes every idle consumer at once.
type waker struct {
	mu sync.Mutex
	ch chan struct{}
}

func newWaker() *waker { return &waker{ch: make(chan struct{})} }

func (w *waker) current() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

func (w *waker) wake() {
	w.mu.Lock()
	close(w.ch)
	w.ch = make(chan struct{})
	w.mu.Unlock()
}

// listen wakes w on every notification on channel until ctx is done.
func listen(ctx context.Context, url, channel string, w *waker) (func(), error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := conn.WaitForNotification(ctx); err != nil {
				return
			}
			w.wake()
		}
	}()
	return func() { <-done; conn.Close(context.Background()) }, nil
}

func rawE2E(ctx context.Context, s Spec, r *Result) error {
	st, err := openRawStore(ctx, s, s.Cfg.E2EWorkers+producersFor(s)+2)
	if err != nil {
		return err
	}
	defer st.Close()
	w := newWaker()
	st.local = w // the producers' commits wake the consumers at once, as wharf's outbox does
	if s.Dialect == "postgres" {
		r.Notes = append(r.Notes, "consumers wake after this process's commits and on LISTEN/NOTIFY, else poll every "+s.Cfg.PollInterval.String())
	} else {
		r.Notes = append(r.Notes, "consumers wake after this process's commits, else poll every "+s.Cfg.PollInterval.String()+" when idle")
	}
	defer st.noteRetries(r)
	return runE2E(ctx, s, r, e2eSystem{
		produce: func(ctx context.Context, seq int, t int64) error { return st.enqueue(ctx, seq, 1, t) },
		consume: func(ctx context.Context, handled func(int64)) error {
			if s.Dialect == "postgres" {
				stop, err := listen(ctx, s.URL, rawNotifyChannel, w)
				if err != nil {
					return err
				}
				defer stop()
			}
			g, gctx := errgroup.WithContext(ctx)
			for i := 0; i < s.Cfg.E2EWorkers; i++ {
				g.Go(func() error {
					for gctx.Err() == nil {
						wake := w.current()
						msgs, err := st.claim(gctx, s.Cfg.Batch, s.Cfg.Lease)
						if err != nil {
							if gctx.Err() != nil {
								return nil
							}
							return err
						}
						if len(msgs) == 0 {
							t := time.NewTimer(s.Cfg.PollInterval)
							select {
							case <-gctx.Done():
							case <-wake:
							case <-t.C:
							}
							t.Stop()
							continue
						}
						for _, m := range msgs {
							handled(payloadTime(m.payload))
						}
						if err := st.complete(context.WithoutCancel(gctx), msgs); err != nil {
							return err
						}
					}
					return nil
				})
			}
			return g.Wait()
		},
		remaining: func(ctx context.Context) (int64, error) { return countRows(ctx, st.db, s.Dialect, rawTable) },
	})
}
