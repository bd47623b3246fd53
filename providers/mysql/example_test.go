package mysql_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/mysql"
)

// Setting up MySQL 8.0+ or MariaDB 10.6+: Open translates the mysql:// URL
// into the driver's DSN (timeouts, utf8mb4, the settings wharf relies on),
// connects and refuses older servers; Migrate creates wharf's tables. MySQL
// cannot notify other processes: relays there poll, so their PollInterval
// bounds the delivery delay.
//
// This example needs a server, so it is compiled but not run.
func ExampleOpen() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	url := os.Getenv(mysql.EnvVar) // mysql://app:secret@db:3306/app
	drv, err := mysql.Open(ctx, url, wharf.Options{
		Pool:   wharf.PoolOptions{MaxOpenConns: 20, ConnMaxLifetime: 5 * time.Minute},
		Outbox: wharf.OutboxOptions{TableName: "app.outbox_messages"}, // database-qualified
	})
	if err != nil {
		// The error names MYSQL_DB_URL's host, never the password.
		fmt.Fprintln(os.Stderr, "orders:", mysql.EnvVar+":", err)
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
	r, err := relay.New(drv.Outbox(), hs, relay.Options{PollInterval: 200 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	go func() { _ = r.Run(ctx) }() // until ctx is cancelled
}

// DSN is the go-sql-driver DSN Open derives from a URL: the URL's own
// parameters are kept and wharf's required settings added. It holds the
// password: never log it.
func ExampleDSN() {
	dsn, err := mysql.DSN("mysql://app:secret@db.internal:3306/shop?tls=true")
	if err != nil {
		panic(err)
	}
	addr, params, _ := strings.Cut(dsn, "?")
	fmt.Println(addr)
	fmt.Println(strings.Contains(params, "tls=true"), strings.Contains(params, "clientFoundRows=true"))

	_, err = mysql.DSN("postgres://app@db/shop") // another dialect's URL
	fmt.Println(errors.Is(err, ports.ErrInvalidArgument))
	// Output:
	// app:secret@tcp(db.internal:3306)/shop
	// true true
	// true
}
