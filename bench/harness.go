package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

func producersFor(s Spec) int {
	switch {
	case s.Dialect == "sqlite":
		return 1 // one writer
	case s.Producers > 0:
		return s.Producers
	}
	return s.Cfg.Producers
}

// runEnqueue runs producers for the configured duration; each call of tx
// inserts s.MsgsPerTx messages in one transaction, numbered from seq.
func runEnqueue(ctx context.Context, s Spec, r *Result, tx func(ctx context.Context, seq int) error) error {
	p := producersFor(s)
	r.Producers = p
	var total atomic.Int64
	deadline := time.Now().Add(s.Cfg.EnqDuration)
	cpu0 := cpuStart()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	for i := 0; i < p; i++ {
		g.Go(func() error {
			seq := i * 1_000_000_000
			for time.Now().Before(deadline) {
				if err := tx(gctx, seq); err != nil {
					return err
				}
				seq += s.MsgsPerTx
				total.Add(int64(s.MsgsPerTx))
			}
			return nil
		})
	}
	err := g.Wait()
	el := time.Since(start)
	r.Messages = total.Load()
	r.Seconds = el.Seconds()
	r.MsgsPerSec = float64(r.Messages) / el.Seconds()
	r.setCPU(cpu0, r.Messages)
	return err
}

// latencies collects enqueue→handler latencies.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(enqueued int64) {
	d := time.Duration(time.Now().UnixNano() - enqueued)
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) fill(r *Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	q := func(p float64) float64 {
		i := int(p * float64(len(l.d)-1))
		return float64(l.d[i]) / 1e6
	}
	r.P50ms, r.P90ms, r.P99ms, r.MaxMs = q(0.50), q(0.90), q(0.99), float64(l.d[len(l.d)-1])/1e6
}

// e2eSystem is one implementation under the end-to-end workload.
type e2eSystem struct {
	// produce enqueues one message (payload carrying t) in one transaction.
	produce func(ctx context.Context, seq int, t int64) error
	// consume runs consumers until ctx is done, calling handled(t) from the
	// handler of every message; it returns when they have stopped.
	consume func(ctx context.Context, handled func(t int64)) error
	// remaining counts undelivered messages after the consumers stopped.
	remaining func(ctx context.Context) (int64, error)
}

// runE2E runs producers and consumers together for the configured duration,
// then lets the consumers deliver what is left (up to 60s) and checks that
// everything produced was delivered.
func runE2E(ctx context.Context, s Spec, r *Result, sys e2eSystem) error {
	p := producersFor(s)
	r.Producers = p
	r.Workers = s.Cfg.E2EWorkers
	r.Rate = s.Rate
	var (
		lat       latencies
		txLat     latencies // the producers' transactions, enqueue to commit
		delivered atomic.Int64
		produced  atomic.Int64
	)
	cctx, cancelConsumers := context.WithCancel(ctx)
	defer cancelConsumers()
	consumeErr := make(chan error, 1)
	go func() {
		consumeErr <- sys.consume(cctx, func(t int64) {
			lat.add(t)
			delivered.Add(1)
		})
	}()
	time.Sleep(200 * time.Millisecond) // let the consumers start (and LISTEN)

	cpu0 := cpuStart()
	start := time.Now()
	deadline := start.Add(s.Cfg.E2EDuration)
	var interval time.Duration
	if s.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(p) / float64(s.Rate))
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := 0; i < p; i++ {
		g.Go(func() error {
			seq := i * 1_000_000_000
			next := time.Now()
			for time.Now().Before(deadline) {
				if interval > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(interval)
				}
				t := time.Now().UnixNano()
				if err := sys.produce(gctx, seq, t); err != nil {
					return err
				}
				txLat.add(t)
				seq++
				produced.Add(1)
			}
			return nil
		})
	}
	perr := g.Wait()
	window := time.Since(start)
	inWindow := delivered.Load()
	if perr != nil {
		return fmt.Errorf("producer: %w", perr)
	}
	// Let the consumers catch up.
	catchUp := time.Now().Add(60 * time.Second)
	for delivered.Load() < produced.Load() && time.Now().Before(catchUp) {
		select {
		case err := <-consumeErr:
			return fmt.Errorf("consumers stopped early: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	time.Sleep(100 * time.Millisecond) // completions in flight
	cancelConsumers()
	if err := <-consumeErr; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("consumers: %w", err)
	}
	r.Messages = inWindow
	r.Seconds = window.Seconds()
	r.MsgsPerSec = float64(inWindow) / window.Seconds()
	r.Produced = produced.Load()
	r.setCPU(cpu0, r.Produced)
	r.ProducedPerSec = float64(r.Produced) / window.Seconds()
	lat.fill(r)
	var tx Result
	txLat.fill(&tx)
	r.TxP50ms, r.TxP99ms = tx.P50ms, tx.P99ms
	if d := delivered.Load(); d != produced.Load() {
		return fmt.Errorf("delivered %d of %d produced messages", d, produced.Load())
	}
	left, err := sys.remaining(ctx)
	if err != nil {
		return err
	}
	if left != 0 {
		return fmt.Errorf("%d messages left undelivered in the table", left)
	}
	return nil
}
