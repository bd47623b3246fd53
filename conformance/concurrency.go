package conformance

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/ports"
)

func concurrencyTests() []testCase {
	return []testCase{
		{"ClaimersDeliverEveryMessageExactlyOnce", testConcurrentClaimers},
		{"ProducersAndClaimersDeliverEveryMessageExactlyOnce", testConcurrentProducers},
		{"ConcurrentTransactionsAllCommit", testConcurrentTransactions},
	}
}

// realNow is the real clock. The concurrency tests use it (with leases far
// longer than the tests) so that no lease expires.
func realNow() time.Time { return time.Now() }

// deliveryTracker checks that no message is held by two live claims at once
// and that every message is delivered exactly once.
type deliveryTracker struct {
	live      sync.Map // message ID -> worker holding it
	delivered sync.Map // message ID -> worker that completed it
	count     atomic.Int64
	errs      errorList
}

// claimed registers a batch handed to worker w.
func (d *deliveryTracker) claimed(w int, msgs []ports.ClaimedMessage) []ports.Claim {
	claims := make([]ports.Claim, len(msgs))
	for i, m := range msgs {
		if holder, loaded := d.live.LoadOrStore(m.ID, w); loaded {
			d.errs.add(fmt.Errorf("message %s handed to worker %d while worker %v holds a live claim", m.ID, w, holder))
		}
		if m.Attempts != 1 {
			d.errs.add(fmt.Errorf("message %s claimed with Attempts %d; no lease expired, so every message is claimed once", m.ID, m.Attempts))
		}
		claims[i] = m.Claim()
	}
	return claims
}

// completed registers the successful completion of a batch by worker w.
func (d *deliveryTracker) completed(w int, msgs []ports.ClaimedMessage) {
	for _, m := range msgs {
		d.live.Delete(m.ID)
		if prev, dup := d.delivered.LoadOrStore(m.ID, w); dup {
			d.errs.add(fmt.Errorf("message %s delivered twice (workers %v and %d)", m.ID, prev, w))
		}
		d.count.Add(1)
	}
}

// work claims and completes one batch; it reports whether the claim was
// empty and fails on any error.
func (d *deliveryTracker) work(ctx context.Context, w int, ob ports.Outbox) (empty bool, ok bool) {
	msgs, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute})
	if err != nil {
		d.errs.add(fmt.Errorf("worker %d: Claim: %w", w, err))
		return false, false
	}
	if len(msgs) == 0 {
		return true, true
	}
	if len(msgs) > 10 {
		d.errs.add(fmt.Errorf("worker %d: Claim with Limit 10 returned %d messages", w, len(msgs)))
	}
	claims := d.claimed(w, msgs)
	if err := ob.Complete(ctx, claims...); err != nil {
		d.errs.add(fmt.Errorf("worker %d: Complete: %w", w, err))
		return false, false
	}
	d.completed(w, msgs)
	return false, true
}

// mayStop is asked by worker w after an empty claim, once no more messages
// will be produced: it reports true when all want messages were delivered.
// Otherwise it waits the worker's poll interval (1ms) and reports false, so
// that the worker claims again; after 30 s of empty claims (*giveUp, set at
// the first) it records an error and reports true.
func (d *deliveryTracker) mayStop(w int, want int64, giveUp *time.Time) bool {
	left := want - d.count.Load()
	if left <= 0 {
		return true
	}
	if giveUp.IsZero() {
		*giveUp = time.Now().Add(30 * time.Second)
	} else if time.Now().After(*giveUp) {
		d.errs.add(fmt.Errorf("worker %d: %d messages still undelivered after 30s of empty claims", w, left))
		return true
	}
	<-time.After(time.Millisecond)
	return false
}

func (d *deliveryTracker) deliveredIDs() map[string]struct{} {
	ids := map[string]struct{}{}
	d.delivered.Range(func(k, _ any) bool {
		ids[k.(string)] = struct{}{}
		return true
	})
	return ids
}

func testConcurrentClaimers(t *testing.T, h Harness) {
	const total, batch, workers = 2000, 250, 8
	f := setup(t, h)
	seed := f.outboxWith(f.db, config{now: realNow})
	var enqueued []string
	for b := 0; b < total/batch; b++ {
		msgs := make([]ports.OutboxMessage, batch)
		for i := range msgs {
			msgs[i] = ports.OutboxMessage{Topic: "conf.load", Payload: raw(fmt.Sprintf(`{"b":%d,"i":%d}`, b, i))}
		}
		enqueued = append(enqueued, f.enqueue(seed, msgs...)...)
	}
	require.Len(t, uniq(enqueued), total)

	outboxes := make([]ports.Outbox, workers)
	for w := range outboxes {
		outboxes[w] = f.outboxWith(f.db, config{now: realNow})
	}
	var d deliveryTracker
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w, ob := range outboxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var giveUp time.Time
			for {
				empty, ok := d.work(f.ctx, w, ob)
				if !ok {
					return
				}
				if !empty {
					giveUp = time.Time{}
					continue
				}
				// An empty claim does not prove that nothing is left: SKIP
				// LOCKED passes over rows another claimer holds for a
				// moment without taking them.
				if d.mayStop(w, total, &giveUp) {
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()

	require.NoError(t, d.errs.err())
	require.EqualValues(t, total, d.count.Load(), "every message is delivered once")
	require.Equal(t, uniq(enqueued), d.deliveredIDs(), "exactly the enqueued messages are delivered")
	require.Empty(t, f.listAll(seed), "the outbox is empty")
	require.Equal(t, ports.OutboxStats{}, f.stats(seed))
}

// signal wakes every waiter when something happened after they started
// waiting.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

// wait returns a channel closed by the next broadcast.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

func testConcurrentProducers(t *testing.T, h Harness) {
	const producers, txPerProducer, msgsPerTx, claimers = 4, 25, 8, 8
	f := setup(t, h)
	uow, _ := f.unitOfWork(uowConfig{driver: config{now: realNow}, maxAttempts: 10})
	outboxes := make([]ports.Outbox, claimers)
	for w := range outboxes {
		outboxes[w] = f.outboxWith(f.db, config{now: realNow})
	}

	var produced sync.Map
	var producedCount atomic.Int64
	var d deliveryTracker
	committed := newSignal()
	done := make(chan struct{})
	start := make(chan struct{})

	var prodWG sync.WaitGroup
	for p := range producers {
		prodWG.Add(1)
		go func() {
			defer prodWG.Done()
			<-start
			for i := range txPerProducer {
				var ids []string
				err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
					msgs := make([]ports.OutboxMessage, msgsPerTx)
					for j := range msgs {
						msgs[j] = ports.OutboxMessage{Topic: "conf.produced", Payload: raw(fmt.Sprintf(`{"p":%d,"tx":%d,"m":%d}`, p, i, j))}
					}
					var err error
					ids, err = tx.Outbox.Enqueue(ctx, msgs...)
					return err
				})
				if err != nil {
					d.errs.add(fmt.Errorf("producer %d transaction %d: %w", p, i, err))
					return
				}
				for _, id := range ids {
					produced.Store(id, p)
					producedCount.Add(1)
				}
				committed.broadcast()
			}
		}()
	}
	go func() {
		prodWG.Wait()
		close(done)
	}()

	var claimWG sync.WaitGroup
	for w, ob := range outboxes {
		claimWG.Add(1)
		go func() {
			defer claimWG.Done()
			<-start
			var giveUp time.Time
			for {
				// Read the state before claiming. After the producers
				// finished, an empty claim does not prove that nothing is
				// left (SKIP LOCKED passes over rows another claimer holds
				// for a moment without taking them): workers stop when
				// every committed message was delivered, and look again
				// shortly until then.
				wake := committed.wait()
				finished := false
				select {
				case <-done:
					finished = true
				default:
				}
				empty, ok := d.work(f.ctx, w, ob)
				if !ok {
					return
				}
				if !empty {
					giveUp = time.Time{}
					continue
				}
				if !finished {
					select {
					case <-wake:
					case <-done:
					}
					continue
				}
				if d.mayStop(w, producedCount.Load(), &giveUp) {
					return
				}
			}
		}()
	}
	close(start)
	claimWG.Wait()
	<-done

	require.NoError(t, d.errs.err())
	require.EqualValues(t, producers*txPerProducer*msgsPerTx, producedCount.Load(), "every producer transaction committed")
	want := map[string]struct{}{}
	produced.Range(func(k, _ any) bool {
		want[k.(string)] = struct{}{}
		return true
	})
	require.Equal(t, want, d.deliveredIDs(), "exactly the committed messages are delivered")
	require.EqualValues(t, len(want), d.count.Load(), "each exactly once")
	require.Empty(t, f.listAll(f.outbox(f.db)), "the outbox is empty")
}

func testConcurrentTransactions(t *testing.T, h Harness) {
	const goroutines, txs = 8, 20
	f := setup(t, h)
	f.createItems()
	_, err := f.db.ExecContext(f.ctx, "CREATE TABLE conf_counters (id VARCHAR(64) PRIMARY KEY, n INTEGER NOT NULL)")
	require.NoError(t, err)
	_, err = f.db.ExecContext(f.ctx, "INSERT INTO conf_counters (id, n) VALUES (?, ?)", "c", 0)
	require.NoError(t, err)

	bus := &recordingBus{}
	uow, _ := f.unitOfWork(uowConfig{eventBus: bus, maxAttempts: 10})
	var errs errorList
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range txs {
				err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
					if _, err := tx.DB.ExecContext(ctx, "UPDATE conf_counters SET n = n + 1 WHERE id = ?", "c"); err != nil {
						return err
					}
					if err := insertItem(ctx, tx.DB, fmt.Sprintf("g%d-%02d", g, i), "x"); err != nil {
						return err
					}
					return tx.Events.Record(ctx, ports.Event{Name: "conf.incremented", Payload: raw(fmt.Sprintf(`{"g":%d,"i":%d}`, g, i))})
				})
				errs.add(err)
			}
		}()
	}
	close(start)
	wg.Wait()

	require.NoError(t, errs.err(), "every transaction commits")
	var n int
	require.NoError(t, f.db.NewRaw("SELECT n FROM conf_counters WHERE id = ?", "c").Scan(f.ctx, &n))
	require.Equal(t, goroutines*txs, n, "no increment is lost")
	require.Len(t, f.items(), goroutines*txs)
	_, events := bus.snapshot()
	require.Len(t, events, goroutines*txs, "every committed transaction publishes its event once")
	seen := map[string]bool{}
	for _, ev := range events {
		seen[string(ev.Payload)] = true
	}
	require.Len(t, seen, goroutines*txs, "no event is published twice")
}
