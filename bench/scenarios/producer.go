package main

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

// sink inserts messages for one system, each call in its own transaction.
type sink interface {
	// insert inserts one message; id is the caller's message ID where the
	// system takes one (retries of one message reuse it).
	insert(ctx context.Context, seq, t int64, id string) error
	// insertMany inserts the messages seqs in one transaction.
	insertMany(ctx context.Context, seqs []int64, t int64) error
	// idempotent says whether a retried insert of the same id fails with
	// ports.ErrUniqueViolation once the first one has committed.
	idempotent() bool
	close()
}

// wharfSink inserts through a unit of work, as an application would:
// one message with its business write, in one transaction.
type wharfSink struct {
	drv *wharf.Driver
	uow *wharf.UnitOfWork[wharf.Outbox]
}

func newWharfSink(ctx context.Context, url string, conns int) (*wharfSink, error) {
	drv, err := wharf.Open(ctx, url, wharf.Options{
		Pool:   wharf.PoolOptions{MaxOpenConns: conns, MaxIdleConns: conns},
		Logger: quietLogger(),
	})
	if err != nil {
		return nil, err
	}
	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (wharf.Outbox, error) { return tx.Outbox, nil }, wharf.UnitOfWorkOptions{})
	if err != nil {
		drv.Close()
		return nil, err
	}
	return &wharfSink{drv: drv, uow: uow}, nil
}

func (w *wharfSink) insert(ctx context.Context, seq, t int64, id string) error {
	return w.uow.Transaction(ctx, func(ctx context.Context, ob wharf.Outbox) error {
		_, err := ob.Enqueue(ctx, ports.OutboxMessage{ID: id, Topic: topic, Payload: []byte(payload(seq, t))})
		return err
	})
}

func (w *wharfSink) insertMany(ctx context.Context, seqs []int64, t int64) error {
	msgs := make([]ports.OutboxMessage, len(seqs))
	for i, s := range seqs {
		msgs[i] = ports.OutboxMessage{Topic: topic, Payload: []byte(payload(s, t))}
	}
	return w.uow.Transaction(ctx, func(ctx context.Context, ob wharf.Outbox) error {
		_, err := ob.Enqueue(ctx, msgs...)
		return err
	})
}

func (w *wharfSink) idempotent() bool { return true }
func (w *wharfSink) close()           { w.drv.Close() }

// riverSink inserts with River's client.Insert (its own transaction).
type riverSink struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
}

func newRiverSink(ctx context.Context, url string, conns int) (*riverSink, error) {
	pool, err := riverPool(ctx, url, "scen-river-producer", int32(conns))
	if err != nil {
		return nil, err
	}
	c, err := riverInsertClient(pool)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &riverSink{pool: pool, client: c}, nil
}

func (r *riverSink) insert(ctx context.Context, seq, t int64, _ string) error {
	_, err := r.client.Insert(ctx, riverArgs{Seq: seq, T: t}, nil)
	return err
}

func (r *riverSink) insertMany(ctx context.Context, seqs []int64, t int64) error {
	ps := make([]river.InsertManyParams, len(seqs))
	for i, s := range seqs {
		ps[i] = river.InsertManyParams{Args: riverArgs{Seq: s, T: t}}
	}
	_, err := r.client.InsertMany(ctx, ps)
	return err
}

func (r *riverSink) idempotent() bool { return false }
func (r *riverSink) close()           { r.pool.Close() }

// producer offers messages at a fixed rate (times a multiplier that the
// overload stress raises) from several goroutines, each message in its
// own transaction. A failed insert is retried (same sequence number, and
// the same ID where the system takes one) until it commits or the run
// ends; slots missed by more than a second are dropped, so the offered
// rate is what was inserted.
type producer struct {
	tr     *tracker
	sink   sink
	rate   float64
	mult   atomic.Uint64 // float64 bits
	errs   atomic.Int64
	n      int
	wg     sync.WaitGroup
	cancel context.CancelFunc
}

func newProducer(tr *tracker, s sink, rate float64, goroutines int) *producer {
	p := &producer{tr: tr, sink: s, rate: rate, n: goroutines}
	p.setMultiplier(1)
	return p
}

func (p *producer) setMultiplier(m float64) { p.mult.Store(math.Float64bits(m)) }

func (p *producer) target() float64 { return p.rate * math.Float64frombits(p.mult.Load()) }

func (p *producer) start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	for i := 0; i < p.n; i++ {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.loop(ctx, time.Duration(i)*time.Second/time.Duration(max(1, int(p.rate))))
		}()
	}
}

func (p *producer) stop() {
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
}

func (p *producer) loop(ctx context.Context, offset time.Duration) {
	next := time.Now().Add(offset)
	for {
		if d := time.Until(next); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		p.one(ctx)
		interval := time.Duration(float64(time.Second) * float64(p.n) / p.target())
		next = next.Add(interval)
		if time.Since(next) > time.Second {
			next = time.Now()
		}
	}
}

// one inserts one message, retrying until it commits or ctx ends.
func (p *producer) one(ctx context.Context) {
	seq := p.tr.allocate()
	id := core.NewID()
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := p.sink.insert(ctx, seq, time.Now().UnixNano(), id)
		if err == nil || (attempt > 0 && p.sink.idempotent() && errors.Is(err, ports.ErrUniqueViolation)) {
			p.tr.commit(seq)
			return
		}
		if ctx.Err() != nil {
			return
		}
		p.errs.Add(1)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// burst inserts n messages at once, 500 per transaction.
func (p *producer) burst(ctx context.Context, n int) error {
	for done := 0; done < n; {
		k := min(500, n-done)
		seqs := make([]int64, k)
		for i := range seqs {
			seqs[i] = p.tr.allocate()
		}
		if err := p.sink.insertMany(ctx, seqs, time.Now().UnixNano()); err != nil {
			return err
		}
		for _, s := range seqs {
			p.tr.commit(s)
		}
		done += k
	}
	return nil
}
