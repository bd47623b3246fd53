package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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

// Open sets up SQLite from a URL: a file (created if missing) with WAL,
// a busy timeout and foreign keys added unless the URL sets them. Options
// rename wharf's tables and size the pool; Migrate creates the tables and
// CheckSchema verifies them at start-up (for a deployment where migrations
// run elsewhere).
func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "wharf-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	drv, err := sqlite.Open(ctx, "file:"+filepath.Join(dir, "app.db"), wharf.Options{
		Outbox:      wharf.OutboxOptions{TableName: "app_outbox"},
		Idempotency: wharf.IdempotencyOptions{TableName: "app_idempotency", TTL: 24 * time.Hour},
		Pool:        wharf.PoolOptions{MaxOpenConns: 4},
	})
	if err != nil {
		panic(err)
	}
	defer drv.Close()
	fmt.Println("dialect:", drv.Dialect())
	fmt.Println("before Migrate:", drv.CheckSchema(ctx) != nil)
	if err := drv.Migrate(ctx); err != nil {
		panic(err)
	}
	fmt.Println("after Migrate:", drv.CheckSchema(ctx))
	var tables []string
	if err := drv.DB().NewRaw("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'app_%' ORDER BY name").Scan(ctx, &tables); err != nil {
		panic(err)
	}
	fmt.Println("tables:", tables)

	_, err = sqlite.Open(ctx, "app.db", wharf.Options{}) // no scheme
	fmt.Println(errors.Is(err, ports.ErrInvalidArgument))
	// Output:
	// dialect: sqlite
	// before Migrate: true
	// after Migrate: <nil>
	// tables: [app_idempotency app_outbox]
	// true
}

// NewProvider installs a driver on a core.App, from SQLITE_DB_URL unless
// ProviderOptions.URL is set; other providers look it up by port name.
func ExampleNewProvider() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "wharf-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	app := core.NewApp(core.AppOptions{})
	if err := app.Register(sqlite.NewProvider(wharf.ProviderOptions{URL: "file:" + filepath.Join(dir, "app.db")})); err != nil {
		panic(err)
	}
	if err := app.Start(ctx); err != nil {
		panic(err)
	}
	defer app.Stop(ctx)
	drv, err := core.Port[*wharf.Driver](app, wharf.DefaultPortName)
	if err != nil {
		panic(err)
	}
	fmt.Println(drv.Dialect(), drv.Migrate(ctx))

	// A missing variable fails Start with its name.
	unset := core.NewApp(core.AppOptions{})
	_ = unset.Register(sqlite.NewProvider(wharf.ProviderOptions{EnvVar: "EXAMPLE_UNSET_DB_URL"}))
	err = unset.Start(ctx)
	fmt.Println(strings.Contains(err.Error(), "EXAMPLE_UNSET_DB_URL"))
	// Output:
	// sqlite <nil>
	// true
}
