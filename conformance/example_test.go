package conformance_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/conformance"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// queryCounter is the application's bun query hook (metrics, tracing).
type queryCounter struct{ n *atomic.Int64 }

func (h queryCounter) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }
func (h queryCounter) AfterQuery(context.Context, *bun.QueryEvent)                        { h.n.Add(1) }

// openAppDB opens the application's own pool rather than letting wharf.Open
// do it: its own SQLite settings (a longer busy timeout than wharf's
// default), pool size and query hook.
func openAppDB(path string, queries *atomic.Int64) (*bun.DB, error) {
	dsn, _, err := sqlite.DSN("file:" + path + "?_pragma=busy_timeout(30000)")
	if err != nil {
		return nil, err
	}
	sqldb, err := sql.Open("sqlite", dsn) // modernc.org/sqlite, registered by providers/sqlite
	if err != nil {
		return nil, err
	}
	sqldb.SetMaxOpenConns(8)
	sqldb.SetConnMaxIdleTime(time.Minute)
	db := bun.NewDB(sqldb, sqlitedialect.New())
	db.AddQueryHook(queryCounter{queries})
	return db, nil
}

// newAppDriver is the application's driver wiring on its pool: wharf's
// options as the caller gives them, plus the application's logger.
func newAppDriver(db *bun.DB, opts wharf.Options) (*wharf.Driver, error) {
	opts.Logger = slog.New(slog.DiscardHandler) // the application's logger
	return wharf.NewDriver(db, opts)
}

// appHarness connects the conformance suite to that wiring: every test
// gets a fresh database file on the application's kind of pool, and its
// driver from newAppDriver. A test of the application runs it:
//
//	func TestWharfConformance(t *testing.T) {
//		conformance.Run(t, appHarness())
//	}
func appHarness() conformance.Harness {
	return conformance.Harness{
		NewDB: func(t testing.TB) *bun.DB {
			db, err := openAppDB(filepath.Join(t.TempDir(), "app.db"), new(atomic.Int64))
			if err != nil {
				t.Fatalf("open the app's database: %v", err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		},
		NewDriver: newAppDriver,
		// SQLite carries no notifications between pools (PostgreSQL does).
		Capabilities: conformance.Capabilities{RemoteNotifications: false},
	}
}

// conformance.Run checks an application's own wiring of a driver — its
// pool, hooks and options — against the behaviour every provider passes:
// appHarness above is what a test of the application passes to
// conformance.Run (this package's TestConformanceOfAnApplicationsWiring
// does). Here the same wiring is used directly: a driver on the
// application's pool, migrated, enqueuing and claiming through the
// application's query hook.
func Example_customDriver() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "wharf-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	var queries atomic.Int64
	db, err := openAppDB(filepath.Join(dir, "app.db"), &queries)
	if err != nil {
		panic(err)
	}
	defer db.Close()
	drv, err := newAppDriver(db, wharf.Options{})
	if err != nil {
		panic(err)
	}
	defer drv.Close() // leaves the application's pool open
	if err := drv.Migrate(ctx); err != nil {
		panic(err)
	}
	before := queries.Load()
	if _, err := drv.Outbox().Enqueue(ctx, ports.OutboxMessage{Topic: "mail.send", Payload: []byte(`{"to":"ann"}`)}); err != nil {
		panic(err)
	}
	msgs, err := drv.Outbox().Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute})
	if err != nil {
		panic(err)
	}
	fmt.Println(drv.Dialect(), len(msgs), msgs[0].Topic)
	fmt.Println("through the app's hook:", queries.Load() > before)
	// Output:
	// sqlite 1 mail.send
	// through the app's hook: true
}
