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
	notify  bool // PostgreSQL: pg_notify after enqueue, as wharf's outbox does
}

func openRawStore(ctx context.Context, s Spec, conns int) (*rawStore, error) {
	db, err := openRaw(ctx, s.Dialect, s.URL, conns)
	if err != nil {
		return nil, err
	}
	return &rawStore{db: db, dialect: s.Dialect, q: newRawSQL(s.Dialect, rawTable), stmts: map[string]*sql.Stmt{}, notify: s.Dialect == "postgres"}, nil
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
// (10-row statements on SQLite, see insertChunk).
func (st *rawStore) enqueue(ctx context.Context, seq, n int, t int64) error {
	chunk := insertChunk(st.dialect, n)
	ins, err := st.stmt(ctx, st.q.insert(chunk))
	if err != nil {
		return err
	}
	var notify *sql.Stmt
	if st.notify {
		if notify, err = st.stmt(ctx, "SELECT pg_notify($1, $2)"); err != nil {
			return err
		}
	}
	now := core.FormatTime(time.Now())
	args := make([]any, 0, n*15)
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
			if txIns, err = st.txStmt(ctx, tx, st.q.insert(n-off)); err != nil {
				tx.Rollback()
				return err
			}
		}
		if _, err := txIns.ExecContext(ctx, args[off*15:min(n, off+chunk)*15]...); err != nil {
			tx.Rollback()
			return err
		}
	}
	if notify != nil {
		if _, err := tx.StmtContext(ctx, notify).ExecContext(ctx, rawNotifyChannel, benchTopic); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
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

func scanRaw(rows *sql.Rows, out []rawMsg) ([]rawMsg, error) {
	defer rows.Close()
	for rows.Next() {
		var (
			m                                  rawMsg
			kind, topic, status                string
			key, headers, locked, token, lastE sql.NullString
			attempts, maxAttempts              int
			avail, created, updated            string
		)
		if err := rows.Scan(&m.id, &kind, &topic, &key, &m.payload, &headers, &status, &attempts, &maxAttempts,
			&avail, &locked, &token, &lastE, &created, &updated); err != nil {
			return nil, err
		}
		if status != "pending" {
			continue // dead-lettered by the claim
		}
		m.token = token.String
		out = append(out, m)
	}
	return out, rows.Err()
}

// isDeadlock reports MySQL's deadlock and lock wait timeout errors, which a
// practical claimer retries.
func isDeadlock(err error) bool {
	var me *gomysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// claim claims up to limit messages, retrying deadlocks.
func (st *rawStore) claim(ctx context.Context, limit int, lease time.Duration) ([]rawMsg, error) {
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

func (st *rawStore) claimOnce(ctx context.Context, limit int, lease time.Duration) ([]rawMsg, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	nowS, until, prefix := core.FormatTime(now), core.FormatTime(now.Add(lease)), newToken()+":"
	out := make([]rawMsg, 0, limit)
	cl, err := st.stmt(ctx, native(st.dialect, st.q.claim()))
	if err != nil {
		return nil, err
	}
	args := st.q.claimArgs(prefix, until, nowS, limit)
	if st.dialect != "mysql" {
		rows, err := cl.QueryContext(ctx, args...)
		if err != nil {
			return nil, err
		}
		return scanRaw(rows, out)
	}
	// As providers/mysql: a READ COMMITTED transaction that locks the
	// eligible rows, updates them and reads them back.
	tx, err := st.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.StmtContext(ctx, cl).QueryContext(ctx, args...)
	if err != nil {
		return nil, err
	}
	var ids []any
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return out, tx.Commit()
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
	rb, err := st.stmt(ctx, native("mysql", st.q.readBack(), len(ids)))
	if err != nil {
		return nil, err
	}
	rows, err = tx.StmtContext(ctx, rb).QueryContext(ctx, ids...)
	if err != nil {
		return nil, err
	}
	if out, err = scanRaw(rows, out); err != nil {
		return nil, err
	}
	return out, tx.Commit()
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
	r.Notes = append(r.Notes, fmt.Sprintf("prepared %d-row INSERTs in one transaction", insertChunk(s.Dialect, s.MsgsPerTx))+map[bool]string{true: " + SELECT pg_notify", false: ""}[st.notify])
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
	start, cpu0 := time.Now(), cpuTime()
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
	if s.Dialect == "postgres" {
		r.Notes = append(r.Notes, "consumers wake on LISTEN/NOTIFY, else poll every "+s.Cfg.PollInterval.String())
	} else {
		r.Notes = append(r.Notes, "consumers poll every "+s.Cfg.PollInterval.String()+" when idle")
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
