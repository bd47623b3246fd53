package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/postgres"
)

// Setting up PostgreSQL: Open connects (and pings) with the URL's settings
// — sslmode, search_path and other run-time parameters — and the pool
// options; Migrate creates wharf's tables (concurrent starts are
// serialised). A relay on the driver's outbox is woken by LISTEN/NOTIFY
// when any process commits messages; behind PgBouncer in transaction mode,
// point Listen.URL at the server itself.
//
// This example needs a server, so it is compiled but not run.
func ExampleOpen() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	url := os.Getenv(postgres.EnvVar) // postgres://app:secret@db:5432/app?sslmode=verify-full&search_path=app
	drv, err := postgres.Open(ctx, url, wharf.Options{
		Pool: wharf.PoolOptions{MaxOpenConns: 20, ConnMaxLifetime: 30 * time.Minute},
		Listen: wharf.ListenOptions{
			ApplicationName: "orders-relay",
			// URL: os.Getenv("POSTGRES_DIRECT_URL"), // when the pool goes through PgBouncer
		},
		Logger: slog.Default(),
	})
	if err != nil {
		// The error names the host and database, never the password.
		fmt.Fprintln(os.Stderr, "orders:", postgres.EnvVar+":", err)
		return
	}
	defer drv.Close()
	if err := drv.Migrate(ctx); err != nil {
		panic(err)
	}

	hs := relay.NewHandlers()
	if err := hs.Handle("order.placed", func(ctx context.Context, msg ports.ClaimedMessage) error {
		return nil // send the confirmation
	}, relay.TopicOptions{}); err != nil {
		panic(err)
	}
	r, err := relay.New(drv.Outbox(), hs, relay.Options{})
	if err != nil {
		panic(err)
	}
	go func() { _ = r.Run(ctx) }() // until ctx is cancelled
}

// NewProvider installs the driver on a core.App from POSTGRES_DB_URL; a
// start-up error names the variable.
//
// This example needs a server, so it is compiled but not run.
func ExampleNewProvider() {
	ctx := context.Background()
	app := core.NewApp(core.AppOptions{})
	if err := app.Register(postgres.NewProvider(wharf.ProviderOptions{})); err != nil {
		panic(err)
	}
	if err := app.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err) // e.g. "... POSTGRES_DB_URL: postgres: cannot connect to ..."
		return
	}
	defer app.Stop(ctx)
	drv, err := core.Port[*wharf.Driver](app, wharf.DefaultPortName)
	if err != nil {
		panic(err)
	}
	fmt.Println(drv.Dialect())
}
