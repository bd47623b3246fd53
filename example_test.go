package wharf_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
	_ "github.com/wharf-go/wharf/providers/sqlite" // registers file: URLs with wharf.Open
)

// Order is the example's entity.
type Order struct {
	ID   string
	Item string
}

// OrderRepository is the application's port for orders.
type OrderRepository interface {
	Add(ctx context.Context, o Order) error
}

// bunOrders implements OrderRepository on a bun.IDB: the pool, or the
// transaction the unit of work hands over.
type bunOrders struct{ db bun.IDB }

func (r bunOrders) Add(ctx context.Context, o Order) error {
	_, err := r.db.ExecContext(ctx, "INSERT INTO orders (id, item) VALUES (?, ?)", o.ID, o.Item)
	return err
}

// OrderPorts are the ports of one transaction, built afresh by the unit of
// work for each: the repository and the event recorder write in it.
type OrderPorts struct {
	Orders OrderRepository
	Events ports.EventRecorder
}

// OrderPlacedEvent is the payload of OrderPlaced.
type OrderPlacedEvent struct {
	OrderID string `json:"order_id"`
	Item    string `json:"item"`
}

// OrderPlaced is a typed event; its name is the outbox topic.
var OrderPlaced = core.DefineEvent[OrderPlacedEvent]("order.placed")

// A unit of work with a repository and events: the order row and its
// order.placed event commit together, or — when the use case fails after
// writing both — neither does.
func Example_unitOfWork() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "wharf-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	// The URL's scheme picks the dialect: file: is SQLite.
	drv, err := wharf.Open(ctx, "file:"+filepath.Join(dir, "shop.db"), wharf.Options{})
	if err != nil {
		panic(err)
	}
	defer drv.Close()
	if err := drv.Migrate(ctx); err != nil { // wharf's outbox and idempotency tables
		panic(err)
	}
	if _, err := drv.DB().ExecContext(ctx, "CREATE TABLE orders (id TEXT PRIMARY KEY, item TEXT NOT NULL)"); err != nil {
		panic(err)
	}

	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (OrderPorts, error) {
		return OrderPorts{Orders: bunOrders{tx.DB}, Events: tx.Events}, nil
	}, wharf.UnitOfWorkOptions{})
	if err != nil {
		panic(err)
	}

	// The use case sees only its ports.
	placeOrder := func(ctx context.Context, item string, quantity int) error {
		return uow.Transaction(ctx, func(ctx context.Context, tx OrderPorts) error {
			o := Order{ID: core.NewID(), Item: item}
			if err := tx.Orders.Add(ctx, o); err != nil {
				return err
			}
			if err := OrderPlaced.Record(ctx, tx.Events, OrderPlacedEvent{OrderID: o.ID, Item: o.Item}); err != nil {
				return err
			}
			if quantity <= 0 {
				return errors.New("quantity must be positive") // rolls back the row and the event
			}
			return nil
		})
	}

	fmt.Println("tea:", placeOrder(ctx, "tea", 2))
	fmt.Println("cake:", placeOrder(ctx, "cake", 0))

	var orders int
	if err := drv.DB().NewRaw("SELECT COUNT(*) FROM orders").Scan(ctx, &orders); err != nil {
		panic(err)
	}
	stats, err := drv.Outbox().Stats(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("orders:", orders, "events in the outbox:", stats.Pending())
	// Output:
	// tea: <nil>
	// cake: quantity must be positive
	// orders: 1 events in the outbox: 1
}

// Open picks the dialect from the URL's scheme; the provider package must
// be imported (blank) so that its scheme is known.
func ExampleOpen() {
	ctx := context.Background()
	drv, err := wharf.Open(ctx, ":memory:", wharf.Options{})
	if err != nil {
		panic(err)
	}
	defer drv.Close()
	fmt.Println(drv.Dialect())

	_, err = wharf.Open(ctx, "redis://localhost:6379/0", wharf.Options{})
	fmt.Println(errors.Is(err, ports.ErrInvalidArgument))
	// Output:
	// sqlite
	// true
}
