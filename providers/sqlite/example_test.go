package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// TxPorts are the example's transaction-scoped ports.
type TxPorts struct {
	DB     bun.IDB
	Events ports.EventRecorder
	Idem   ports.Idempotency
}

type OrderPlacedPayload struct {
	ID string `json:"id"`
}

var OrderPlaced = core.DefineEvent[OrderPlacedPayload]("order.placed")

// Example shows the README's use case: an idempotent command whose business
// row, outbox event and idempotency record commit together, then a worker
// that claims and completes the event.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "wharf-example")
	defer os.RemoveAll(dir)

	drv, err := sqlite.Open(ctx, "file:"+filepath.Join(dir, "app.db"), wharf.Options{})
	if err != nil {
		panic(err)
	}
	defer drv.Close()
	if err := drv.Migrate(ctx); err != nil {
		panic(err)
	}
	if _, err := drv.DB().ExecContext(ctx, "CREATE TABLE orders (id TEXT PRIMARY KEY, item TEXT NOT NULL)"); err != nil {
		panic(err)
	}
	outbox := drv.Outbox()
	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (TxPorts, error) {
		return TxPorts{DB: tx.DB, Events: tx.Events, Idem: tx.Idempotency}, nil
	}, wharf.UnitOfWorkOptions{})
	if err != nil {
		panic(err)
	}

	placeOrder := func(key, item string) (string, bool, error) {
		var id string
		var replayed bool
		err := uow.Transaction(ctx, func(ctx context.Context, tx TxPorts) error {
			var err error
			id, replayed, err = core.RunIdempotently(ctx, tx.Idem, ports.ReserveRequest{
				IdempotencyKey: ports.IdempotencyKey{Namespace: "orders.place", Key: key},
				Fingerprint:    core.Fingerprint([]byte(item)),
			}, func(ctx context.Context) (string, error) {
				id := core.NewID()
				if _, err := tx.DB.ExecContext(ctx, "INSERT INTO orders (id, item) VALUES (?, ?)", id, item); err != nil {
					return "", err
				}
				return id, OrderPlaced.Record(ctx, tx.Events, OrderPlacedPayload{ID: id})
			})
			return err
		})
		return id, replayed, err
	}

	first, replayed1, _ := placeOrder("key-1", "tea")
	again, replayed2, _ := placeOrder("key-1", "tea")
	_, _, err = placeOrder("key-1", "coffee")
	fmt.Println("same order on retry:", first == again, replayed1, replayed2)
	fmt.Println("key reused with another body:", errors.Is(err, ports.ErrIdempotencyMismatch))

	msgs, _ := outbox.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: 30 * time.Second})
	for _, m := range msgs {
		payload, _ := OrderPlaced.DecodePayload(m.Payload)
		fmt.Println("event:", m.Topic, payload.ID == first)
		if err := outbox.Complete(ctx, m.Claim()); err != nil {
			panic(err)
		}
	}
	err = outbox.Complete(ctx, msgs[0].Claim())
	fmt.Println("second completion:", errors.Is(err, ports.ErrClaimLost))
	// Output:
	// same order on retry: true false true
	// key reused with another body: true
	// event: order.placed true
	// second completion: true
}
