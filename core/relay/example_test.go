package relay_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// openExampleDriver opens a migrated SQLite driver in a temporary directory;
// cleanup closes and removes it.
func openExampleDriver(opts wharf.Options) (drv *wharf.Driver, cleanup func()) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "wharf-example")
	if err != nil {
		panic(err)
	}
	drv, err = sqlite.Open(ctx, "file:"+filepath.Join(dir, "app.db"), opts)
	if err != nil {
		panic(err)
	}
	if err := drv.Migrate(ctx); err != nil {
		panic(err)
	}
	return drv, func() { _ = drv.Close(); _ = os.RemoveAll(dir) }
}

// The relay with typed handlers: a use case records events in its
// transaction; one pass of the relay (Drain, as a cron job would run it)
// hands each to the handler of its type. A handler's error retries the
// message later; relay.Permanent dead-letters it at once.
func Example() {
	ctx := context.Background()
	drv, cleanup := openExampleDriver(wharf.Options{})
	defer cleanup()

	type OrderEvent struct {
		OrderID string `json:"order_id"`
	}
	orderPlaced := core.DefineEvent[OrderEvent]("order.placed")
	orderCancelled := core.DefineEvent[OrderEvent]("order.cancelled")

	// The use case: its events commit with its transaction.
	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (wharf.Tx, error) { return tx, nil }, wharf.UnitOfWorkOptions{})
	if err != nil {
		panic(err)
	}
	err = uow.Transaction(ctx, func(ctx context.Context, tx wharf.Tx) error {
		for _, id := range []string{"o-1", "o-2"} {
			if err := orderPlaced.Record(ctx, tx.Events, OrderEvent{OrderID: id}); err != nil {
				return err
			}
		}
		return orderCancelled.Record(ctx, tx.Events, OrderEvent{OrderID: "o-9"})
	})
	if err != nil {
		panic(err)
	}

	// The handlers, one per event type, with decoded payloads. They run
	// concurrently, so this one collects what it saw under a lock.
	var mu sync.Mutex
	var confirmed []string
	hs := relay.NewHandlers()
	err = relay.HandleEvent(hs, orderPlaced, func(ctx context.Context, p OrderEvent, ev ports.Event) error {
		mu.Lock()
		defer mu.Unlock()
		confirmed = append(confirmed, p.OrderID)
		return nil
	}, relay.TopicOptions{})
	if err != nil {
		panic(err)
	}
	err = relay.HandleEvent(hs, orderCancelled, func(ctx context.Context, p OrderEvent, ev ports.Event) error {
		return relay.Permanent(fmt.Errorf("order %s does not exist", p.OrderID)) // retrying cannot help
	}, relay.TopicOptions{})
	if err != nil {
		panic(err)
	}

	r, err := relay.New(drv.Outbox(), hs, relay.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	res, err := r.Drain(ctx) // a long-running service calls r.Run(ctx) instead
	if err != nil {
		panic(err)
	}
	sort.Strings(confirmed)
	fmt.Println("confirmed:", confirmed)
	fmt.Printf("claimed %d, delivered %d, dead-lettered %d\n", res.Claimed, res.Delivered, res.DeadLettered)
	// Output:
	// confirmed: [o-1 o-2]
	// claimed 3, delivered 2, dead-lettered 1
}

// exampleClock is a clock the example moves forward by hand.
type exampleClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *exampleClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *exampleClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// An effectively-once consumer: the handler's write and the record that it
// handled the message commit in one transaction, so when the outbox
// redelivers the message — here after a worker "crashed" between handling
// it and completing it, and its lease expired — the handler does not run
// again.
func ExampleEffectivelyOnceTx() {
	ctx := context.Background()
	clock := &exampleClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	drv, cleanup := openExampleDriver(wharf.Options{Now: clock.Now})
	defer cleanup()
	if _, err := drv.DB().ExecContext(ctx, "CREATE TABLE points (customer TEXT PRIMARY KEY, total INTEGER NOT NULL)"); err != nil {
		panic(err)
	}
	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (wharf.Tx, error) { return tx, nil }, wharf.UnitOfWorkOptions{})
	if err != nil {
		panic(err)
	}

	type OrderPaid struct {
		Customer string `json:"customer"`
	}
	orderPaid := core.DefineEvent[OrderPaid]("order.paid")
	if err := uow.Transaction(ctx, func(ctx context.Context, tx wharf.Tx) error {
		return orderPaid.Record(ctx, tx.Events, OrderPaid{Customer: "ann"})
	}); err != nil {
		panic(err)
	}

	// Award 10 points per paid order, exactly once per message.
	award, err := relay.EffectivelyOnceTx(uow, func(tx wharf.Tx) ports.Idempotency { return tx.Idempotency }, "loyalty.award",
		func(ctx context.Context, tx wharf.Tx, msg ports.ClaimedMessage) error {
			p, err := orderPaid.DecodePayload(msg.Payload)
			if err != nil {
				return relay.Permanent(err)
			}
			_, err = tx.DB.ExecContext(ctx, "INSERT INTO points (customer, total) VALUES (?, 10) "+
				"ON CONFLICT (customer) DO UPDATE SET total = total + 10", p.Customer)
			return err
		}, relay.EffectivelyOnceOptions{})
	if err != nil {
		panic(err)
	}
	points := func() int {
		var n int
		if err := drv.DB().NewRaw("SELECT total FROM points WHERE customer = 'ann'").Scan(ctx, &n); err != nil {
			panic(err)
		}
		return n
	}

	// A worker claims the message and handles it, then dies before it
	// completes the message.
	msgs, err := drv.Outbox().Claim(ctx, ports.ClaimOptions{Limit: 1, Lease: time.Minute})
	if err != nil {
		panic(err)
	}
	fmt.Println("first delivery:", award(ctx, msgs[0]), "points:", points())

	// Its lease expires; the relay redelivers the message.
	clock.Advance(2 * time.Minute)
	hs := relay.NewHandlers()
	if err := hs.Handle(orderPaid.Name(), award, relay.TopicOptions{}); err != nil {
		panic(err)
	}
	r, err := relay.New(drv.Outbox(), hs, relay.Options{Now: clock.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	res, err := r.Drain(ctx)
	if err != nil {
		panic(err)
	}
	stats, err := drv.Outbox().Stats(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("redelivered:", res.Claimed, "delivered:", res.Delivered, "points:", points(), "left in the outbox:", stats.Total())
	// Output:
	// first delivery: <nil> points: 10
	// redelivered: 1 delivered: 1 points: 10 left in the outbox: 0
}
