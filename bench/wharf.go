package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uptrace/bun"
	"golang.org/x/sync/errgroup"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// wharf side: wharf.Open on the case's URL (the URL picks the dialect;
// default settings but the same pool limits as the raw baseline), a unit of
// work whose transactions enqueue through Tx.Outbox, and relay.Relay for
// delivery.

func init() {
	cases["enqueue/wharf"] = wharfEnqueue
	cases["drain/wharf"] = wharfDrain
	cases["drain/wharf-outbox"] = wharfOutboxDrain
	cases["e2e/wharf"] = wharfE2E
	// Diagnostics (opt-in with -impls):
	// wharf-defaults: the relay with its default options (BatchSize 100,
	// Concurrency 200 = 2 × BatchSize, PollInterval 500ms).
	cases["drain/wharf-defaults"] = wharfDrain
	// wharf-serial: a prototype, the outbox behind a mutex (one Claim,
	// Complete, ... at a time per process), to show what the relay loses
	// when its claims and completions overlap on a single-writer database.
	cases["drain/wharf-serial"] = wharfDrain
	cases["e2e/wharf-serial"] = wharfE2E
	// wharf-fastcomplete: a prototype, Complete as one DELETE checked by its
	// row count (the raw baseline's statement, the texts the library uses,
	// through bun), falling back to the library's Complete only when rows
	// are missing.
	cases["drain/wharf-fastcomplete"] = wharfDrain
}

// fastCompleteOutbox completes with one statement and no RETURNING or
// locking read.
type fastCompleteOutbox struct {
	ports.Outbox
	db       bun.IDB
	complete string // DELETE ... id IN (?) AND claim_token IN (?) (rawSQL.complete)
	fallback atomic.Int64
}

func (f *fastCompleteOutbox) Complete(ctx context.Context, claims ...ports.Claim) error {
	if len(claims) == 0 {
		return nil
	}
	ids, tokens := make([]string, len(claims)), make([]string, len(claims))
	for i, c := range claims {
		ids[i], tokens[i] = c.ID, c.Token
	}
	res, err := f.db.ExecContext(ctx, f.complete, bun.In(ids), bun.In(tokens))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n == int64(len(claims)) {
		return nil
	}
	// Some claims were lost: the library's Complete names them (the
	// prototype does not bother to exclude the rows it just deleted).
	f.fallback.Add(1)
	return f.Outbox.Complete(ctx, claims...)
}

// serialOutbox runs one outbox call at a time. Notifications are passed
// through unserialised (they only wake the relay), so that the prototype
// differs from the plain relay only in the mutex.
type serialOutbox struct {
	mu sync.Mutex
	o  wharf.Outbox
}

func (s *serialOutbox) Notifications(ctx context.Context) (<-chan struct{}, error) {
	return s.o.Notifications(ctx)
}

func (s *serialOutbox) Enqueue(ctx context.Context, msgs ...ports.OutboxMessage) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.Enqueue(ctx, msgs...)
}

func (s *serialOutbox) Claim(ctx context.Context, opts ports.ClaimOptions) ([]ports.ClaimedMessage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.Claim(ctx, opts)
}

func (s *serialOutbox) Complete(ctx context.Context, claims ...ports.Claim) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.Complete(ctx, claims...)
}

func (s *serialOutbox) Retry(ctx context.Context, c ports.Claim, opts ports.RetryOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.Retry(ctx, c, opts)
}

func (s *serialOutbox) DeadLetter(ctx context.Context, c ports.Claim, lastError string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.DeadLetter(ctx, c, lastError)
}

func (s *serialOutbox) Extend(ctx context.Context, c ports.Claim, lease time.Duration) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.Extend(ctx, c, lease)
}

func (s *serialOutbox) Release(ctx context.Context, claims ...ports.Claim) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.Release(ctx, claims...)
}

type wharfEnv struct {
	drv    *wharf.Driver
	outbox wharf.Outbox
	// uow is the driver's unit of work (the path the README recommends: on
	// SQLite it queues writers at the driver's write gate), its ports the
	// outbox bound to the transaction.
	uow   *wharf.UnitOfWork[wharf.Outbox]
	stats *queryStats
}

// benchLogger logs wharf's (and the relays') warnings and errors to stderr.
func benchLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func openWharf(ctx context.Context, s Spec, conns int) (*wharfEnv, error) {
	drv, err := wharf.Open(ctx, s.URL, wharf.Options{
		Outbox: wharf.OutboxOptions{TableName: wharfTable},
		Pool:   poolOptions(conns),
		Logger: benchLogger(),
	})
	if err != nil {
		return nil, err
	}
	if drv.Dialect() != s.Dialect {
		drv.Close()
		return nil, fmt.Errorf("the URL of %s opened a %s driver", s.Dialect, drv.Dialect())
	}
	e := &wharfEnv{drv: drv, outbox: drv.Outbox()}
	if s.Cfg.TraceSQL {
		e.stats = &queryStats{shapes: map[string]int{}}
		drv.DB().AddQueryHook(e.stats)
	}
	e.uow, err = wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (wharf.Outbox, error) {
		return tx.Outbox, nil
	}, wharf.UnitOfWorkOptions{})
	if err != nil {
		drv.Close()
		return nil, err
	}
	return e, nil
}

func (e *wharfEnv) Close() { e.drv.Close() }

// finish records the query statistics in r.
func (e *wharfEnv) finish(r *Result) {
	if e.stats == nil || r.Messages == 0 {
		return
	}
	total, shapes := e.stats.snapshot()
	r.QueriesPerMsg = float64(total) / float64(r.Messages)
	for _, s := range shapes {
		r.Notes = append(r.Notes, fmt.Sprintf("sql %.3f/msg: %s", float64(s.n)/float64(r.Messages), s.shape))
	}
}

func messages(seq, n int, t int64) []ports.OutboxMessage {
	msgs := make([]ports.OutboxMessage, n)
	for i := range msgs {
		msgs[i] = ports.OutboxMessage{Topic: benchTopic, Payload: json.RawMessage(payload(seq+i, t))}
	}
	return msgs
}

func (e *wharfEnv) enqueue(ctx context.Context, seq, n int, t int64) error {
	return e.uow.Transaction(ctx, func(ctx context.Context, ob wharf.Outbox) error {
		_, err := ob.Enqueue(ctx, messages(seq, n, t)...)
		return err
	})
}

func wharfEnqueue(ctx context.Context, s Spec, r *Result) error {
	e, err := openWharf(ctx, s, producersFor(s)+2)
	if err != nil {
		return err
	}
	defer e.Close()
	r.Notes = append(r.Notes, "wharf.UnitOfWork.Transaction + Tx.Outbox.Enqueue")
	err = runEnqueue(ctx, s, r, func(ctx context.Context, seq int) error {
		return e.enqueue(ctx, seq, s.MsgsPerTx, time.Now().UnixNano())
	})
	e.finish(r)
	return err
}

// relayOptions: BatchSize, and a Concurrency of twice that (the relay's
// default) so that claims come back full (while handlers run, the relay
// claims once min(BatchSize, Concurrency/2) slots are free, and never more
// than the free slots); the completion batch follows BatchSize (the
// default).
func relayOptions(s Spec) relay.Options {
	logger := benchLogger()
	if s.Impl == "wharf-defaults" || s.Impl == "defaults" || s.Workload == "slow" {
		// The slow workload runs the relay as a sink would: defaults.
		return relay.Options{Logger: logger, Lease: s.Cfg.Lease}
	}
	conc := s.Cfg.RelayConcurrency
	if conc == 0 {
		conc = 2 * s.Cfg.Batch
	}
	return relay.Options{
		Logger:       logger,
		BatchSize:    s.Cfg.Batch,
		Concurrency:  conc,
		Lease:        s.Cfg.Lease,
		PollInterval: s.Cfg.PollInterval,
		// The idle back-off stays at the poll interval, as River's
		// FetchPollInterval does.
		MaxPollInterval: s.Cfg.PollInterval,
	}
}

// relayOutbox is the outbox the case's relays use: the driver's, or a
// prototype around it.
func relayOutbox(e *wharfEnv, s Spec) ports.Outbox {
	switch s.Impl {
	case "wharf-serial":
		return &serialOutbox{o: e.outbox}
	case "wharf-fastcomplete":
		return &fastCompleteOutbox{Outbox: e.outbox, db: e.drv.DB(), complete: newRawSQL(s.Dialect, wharfTable).complete()}
	}
	return e.outbox
}

// relays builds n relays sharing one outbox and one handler: "n workers" is
// n relays (n claim loops, like n raw goroutines), each able to hold a
// batch.
func relays(ob ports.Outbox, s Spec, n int, h relay.Handler) ([]*relay.Relay, error) {
	out := make([]*relay.Relay, n)
	for i := range out {
		hs := relay.NewHandlers()
		if err := hs.Handle(benchTopic, h, relay.TopicOptions{}); err != nil {
			return nil, err
		}
		rl, err := relay.New(ob, hs, relayOptions(s))
		if err != nil {
			return nil, err
		}
		out[i] = rl
	}
	return out, nil
}

func wharfDrain(ctx context.Context, s Spec, r *Result) error {
	e, err := openWharf(ctx, s, s.Workers*2+2)
	if err != nil {
		return err
	}
	defer e.Close()
	var handled atomic.Int64
	timed := &timedOutbox{Outbox: relayOutbox(e, s)}
	delay := s.Delay
	rls, err := relays(timed, s, s.Workers, func(ctx context.Context, msg ports.ClaimedMessage) error {
		if delay > 0 {
			time.Sleep(delay)
		}
		handled.Add(1)
		return nil
	})
	if err != nil {
		return err
	}
	o := relayOptions(s)
	r.Notes = append(r.Notes, fmt.Sprintf("%d relay(s) running Drain, each BatchSize %d, Concurrency %d, CompleteBatchSize %d, handler latency %v",
		len(rls), o.BatchSize, o.Concurrency, rls[0].Options().CompleteBatchSize, delay))
	heap := startHeapSampler()
	var (
		mu       sync.Mutex
		tot      relay.DrainResult
		restarts atomic.Int64
	)
	cpu0 := cpuStart()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for _, rl := range rls {
		g.Go(func() error {
			for {
				res, err := rl.Drain(gctx)
				mu.Lock()
				tot.Claimed += res.Claimed
				tot.Delivered += res.Delivered
				tot.Retried += res.Retried
				tot.DeadLettered += res.DeadLettered
				tot.Abandoned += res.Abandoned
				tot.Released += res.Released
				mu.Unlock()
				// The relay retries a retryable claim error a few times;
				// one that persists ends the Drain, and a cron-style caller
				// runs it again. Count those restarts.
				if err != nil && errors.Is(err, ports.ErrRetryable) && gctx.Err() == nil {
					restarts.Add(1)
					continue
				}
				return err
			}
		})
	}
	err = g.Wait()
	el := time.Since(start)
	r.PeakHeapMiB = heap.Stop()
	r.Messages, r.Seconds = int64(tot.Delivered), el.Seconds()
	r.MsgsPerSec = float64(r.Messages) / el.Seconds()
	r.setCPU(cpu0, r.Messages)
	timed.fill(r)
	e.finish(r)
	if n := restarts.Load(); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("Drain returned a retryable claim error %d time(s) and was run again", n))
	}
	if err != nil {
		return err
	}
	if tot.Retried+tot.DeadLettered+tot.Abandoned+tot.Released > 0 {
		return fmt.Errorf("drain result %+v", tot)
	}
	return verifyDrained(ctx, e.drv.DB().DB, s, wharfTable, handled.Load())
}

// wharfOutboxDrain is a diagnostic: wharf's Outbox.Claim and Complete in
// plain loops (as the raw baseline), without the relay.
func wharfOutboxDrain(ctx context.Context, s Spec, r *Result) error {
	e, err := openWharf(ctx, s, s.Workers+2)
	if err != nil {
		return err
	}
	defer e.Close()
	heap := startHeapSampler()
	var handled, retries atomic.Int64
	cpu0 := cpuStart()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for i := 0; i < s.Workers; i++ {
		g.Go(func() error {
			claims := make([]ports.Claim, 0, s.Cfg.Batch)
			for {
				msgs, err := e.outbox.Claim(gctx, ports.ClaimOptions{Limit: s.Cfg.Batch, Lease: s.Cfg.Lease})
				if err != nil {
					if errors.Is(err, ports.ErrRetryable) {
						retries.Add(1)
						continue
					}
					return err
				}
				if len(msgs) == 0 {
					return nil
				}
				claims = claims[:0]
				for _, m := range msgs {
					handled.Add(1)
					claims = append(claims, m.Claim())
				}
				for {
					err := e.outbox.Complete(gctx, claims...)
					if err != nil && errors.Is(err, ports.ErrRetryable) {
						retries.Add(1)
						continue
					}
					if err != nil {
						return err
					}
					break
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
	e.finish(r)
	if n := retries.Load(); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d retryable Claim/Complete errors retried", n))
	}
	if err != nil {
		return err
	}
	return verifyDrained(ctx, e.drv.DB().DB, s, wharfTable, r.Messages)
}

func wharfE2E(ctx context.Context, s Spec, r *Result) error {
	e, err := openWharf(ctx, s, s.Cfg.E2EWorkers*2+producersFor(s)+2)
	if err != nil {
		return err
	}
	defer e.Close()
	var handler atomic.Pointer[func(int64)]
	ob := relayOutbox(e, s)
	rls, err := relays(ob, s, s.Cfg.E2ERelays, func(ctx context.Context, msg ports.ClaimedMessage) error {
		(*handler.Load())(payloadTime(msg.Payload))
		return nil
	})
	if err != nil {
		return err
	}
	_, notifier := ob.(ports.OutboxNotifier)
	o := relayOptions(s)
	r.Notes = append(r.Notes, fmt.Sprintf("%d relay(s) running Run, each BatchSize %d, Concurrency %d, PollInterval %v, notifications %v",
		len(rls), o.BatchSize, o.Concurrency, o.PollInterval, notifier))
	err = runE2E(ctx, s, r, e2eSystem{
		produce: func(ctx context.Context, seq int, t int64) error { return e.enqueue(ctx, seq, 1, t) },
		consume: func(ctx context.Context, handled func(int64)) error {
			handler.Store(&handled)
			g := new(errgroup.Group)
			for _, rl := range rls {
				g.Go(func() error { return rl.Run(ctx) })
			}
			return g.Wait()
		},
		remaining: func(ctx context.Context) (int64, error) { return countRows(ctx, e.drv.DB().DB, s.Dialect, wharfTable) },
	})
	r.Workers = len(rls)
	e.finish(r)
	return err
}

// queryStats is a bun query hook that counts statements by shape (-trace-sql).
type queryStats struct {
	mu     sync.Mutex
	total  int
	shapes map[string]int
}

func (q *queryStats) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

func (q *queryStats) AfterQuery(_ context.Context, ev *bun.QueryEvent) {
	shape := ev.Query
	if i := indexAny(shape, " VALUES ", " IN ("); i > 0 {
		shape = shape[:i] + " …"
	}
	if len(shape) > 110 {
		shape = shape[:110] + "…"
	}
	q.mu.Lock()
	q.total++
	q.shapes[shape]++
	q.mu.Unlock()
}

func indexAny(s string, subs ...string) int {
	best := -1
	for _, sub := range subs {
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				if best < 0 || i < best {
					best = i
				}
				break
			}
		}
	}
	return best
}

type shapeCount struct {
	shape string
	n     int
}

func (q *queryStats) snapshot() (int, []shapeCount) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []shapeCount
	for s, n := range q.shapes {
		out = append(out, shapeCount{s, n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n > out[j].n })
	return q.total, out
}
