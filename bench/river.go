package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// River runs on the same PostgreSQL server in its own schema (riverSchema),
// migrated with rivermigrate; its pool's search_path is that schema and the
// client's Config.Schema names it too. The client is configured as River's
// own benchmark (cmd/river/riverbench) configures it: FetchCooldown 2ms,
// FetchPollInterval 20ms, MaxWorkers 2,000 on the default queue.

func init() {
	cases["enqueue/river"] = riverEnqueue
	cases["drain/river"] = riverDrain
	cases["e2e/river"] = riverE2E
}

type riverArgs struct {
	N int   `json:"n"`
	T int64 `json:"t"`
}

func (riverArgs) Kind() string { return "bench_noop" }

type riverWorker struct {
	river.WorkerDefaults[riverArgs]
	fn func(t int64)
}

func (w *riverWorker) Work(ctx context.Context, job *river.Job[riverArgs]) error {
	if w.fn != nil {
		w.fn(job.Args.T)
	}
	return nil
}

func riverPool(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = maxConns
	cfg.ConnConfig.RuntimeParams["search_path"] = riverSchema
	return pgxpool.NewWithConfig(ctx, cfg)
}

// riverSetup creates River's schema and runs its migrations into it.
func riverSetup(ctx context.Context, url string) (string, error) {
	pool, err := riverPool(ctx, url, 4)
	if err != nil {
		return "", err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+riverSchema); err != nil {
		return "", err
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: riverSchema})
	if err != nil {
		return "", err
	}
	res, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("River migrations applied to schema %s: %d", riverSchema, len(res.Versions)), nil
}

func riverLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// riverClient returns a client; with work it runs the default queue with
// the benchmark configuration, without it is insert-only.
func riverClient(pool *pgxpool.Pool, c Config, work bool, fn func(t int64)) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, &riverWorker{fn: fn})
	rc := &river.Config{Schema: riverSchema, Workers: workers, Logger: riverLogger()}
	if work {
		rc.FetchCooldown = 2 * time.Millisecond
		rc.FetchPollInterval = 20 * time.Millisecond
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: c.RiverWorkers}}
	}
	return river.NewClient(riverpgxv5.New(pool), rc)
}

// riverSeed inserts n jobs with InsertMany (5,000 per call), before any
// client works them.
func riverSeed(ctx context.Context, url string, c Config, n int) error {
	pool, err := riverPool(ctx, url, 4)
	if err != nil {
		return err
	}
	defer pool.Close()
	client, err := riverClient(pool, c, false, nil)
	if err != nil {
		return err
	}
	const batch = 5000
	params := make([]river.InsertManyParams, 0, batch)
	for done := 0; done < n; {
		params = params[:0]
		for i := 0; i < batch && done+i < n; i++ {
			params = append(params, river.InsertManyParams{Args: riverArgs{N: done + i}})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return err
		}
		done += len(params)
	}
	return nil
}

func riverTruncate(ctx context.Context, url string) error {
	pool, err := riverPool(ctx, url, 1)
	if err != nil {
		return err
	}
	defer pool.Close()
	_, err = pool.Exec(ctx, "TRUNCATE "+riverSchema+".river_job")
	return err
}

func riverCount(ctx context.Context, pool *pgxpool.Pool, where string) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, "SELECT count(*) FROM "+riverSchema+".river_job WHERE "+where).Scan(&n)
	return n, err
}

func riverEnqueue(ctx context.Context, s Spec, r *Result) error {
	pool, err := riverPool(ctx, s.URL, s.Cfg.RiverConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	client, err := riverClient(pool, s.Cfg, false, nil)
	if err != nil {
		return err
	}
	if s.MsgsPerTx == 1 {
		r.Notes = append(r.Notes, "client.Insert (its own transaction)")
	} else {
		r.Notes = append(r.Notes, "client.InsertMany (one transaction)")
	}
	return runEnqueue(ctx, s, r, func(ctx context.Context, seq int) error {
		t := time.Now().UnixNano()
		if s.MsgsPerTx == 1 {
			_, err := client.Insert(ctx, riverArgs{N: seq, T: t}, nil)
			return err
		}
		params := make([]river.InsertManyParams, s.MsgsPerTx)
		for i := range params {
			params[i].Args = riverArgs{N: seq + i, T: t}
		}
		_, err := client.InsertMany(ctx, params)
		return err
	})
}

func riverDrain(ctx context.Context, s Spec, r *Result) error {
	pool, err := riverPool(ctx, s.URL, s.Cfg.RiverConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	client, err := riverClient(pool, s.Cfg, true, nil)
	if err != nil {
		return err
	}
	events, cancelSub := client.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: s.Expect + 1000,
		Kinds:    []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled},
	})
	defer cancelSub()
	r.Workers = s.Cfg.RiverWorkers
	heap := startHeapSampler()
	cpu0 := cpuStart()
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return err
	}
	var done, failed int
	var last time.Time
	for done+failed < s.Expect {
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out: %d of %d jobs completed", done, s.Expect)
		case ev := <-events:
			if ev == nil {
				return fmt.Errorf("subscription closed after %d jobs", done)
			}
			if ev.Kind == river.EventKindJobCompleted {
				done++
			} else {
				failed++
			}
			last = time.Now()
		}
	}
	el := last.Sub(start)
	r.PeakHeapMiB = heap.Stop()
	r.Messages, r.Seconds = int64(done), el.Seconds()
	r.MsgsPerSec = float64(done) / el.Seconds()
	r.setCPU(cpu0, r.Messages)
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := client.Stop(stopCtx); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if failed > 0 {
		return fmt.Errorf("%d jobs failed or were cancelled", failed)
	}
	left, err := riverCount(ctx, pool, "state <> 'completed'")
	if err != nil {
		return err
	}
	if left != 0 {
		return fmt.Errorf("%d jobs not completed", left)
	}
	return nil
}

func riverE2E(ctx context.Context, s Spec, r *Result) error {
	pool, err := riverPool(ctx, s.URL, s.Cfg.RiverConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	var handler atomic.Pointer[func(int64)]
	client, err := riverClient(pool, s.Cfg, true, func(t int64) { (*handler.Load())(t) })
	if err != nil {
		return err
	}
	r.Notes = append(r.Notes, "producers: client.Insert (one job per transaction); River wakes on its insert notifications")
	err = runE2E(ctx, s, r, e2eSystem{
		produce: func(ctx context.Context, seq int, t int64) error {
			_, err := client.Insert(ctx, riverArgs{N: seq, T: t}, nil)
			return err
		},
		consume: func(ctx context.Context, handled func(int64)) error {
			handler.Store(&handled)
			if err := client.Start(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			<-ctx.Done()
			stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return client.Stop(stopCtx)
		},
		remaining: func(ctx context.Context) (int64, error) { return riverCount(ctx, pool, "state <> 'completed'") },
	})
	r.Workers = s.Cfg.RiverWorkers
	return err
}
