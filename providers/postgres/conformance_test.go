package postgres_test

import (
	"sync"
	"testing"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/conformance"
)

// TestConformance gives every conformance test a fresh database of its own
// on the server of WHARF_TEST_POSTGRES_URL.
func TestConformance(t *testing.T) {
	conformance.Run(t, harness(direct))
}

// TestConformanceThroughPgBouncer runs the suite again with every pool going
// through PgBouncer in transaction pooling mode (WHARF_TEST_PGBOUNCER_URL),
// each test on a database of its own: what wharf does must not depend on
// session state. Notifications come over a direct connection to the same
// database (Options.Listen.URL), as they must behind such a proxy.
func TestConformanceThroughPgBouncer(t *testing.T) {
	conformance.Run(t, harness(pgbouncer))
}

// harness opens each test's database through r. Through PgBouncer the
// driver factory points Options.Listen.URL at the server itself.
func harness(r route) conformance.Harness {
	var servers sync.Map // *bun.DB -> its database's URL on the server
	return conformance.Harness{
		NewDB: func(t testing.TB) *bun.DB {
			d := newDatabase(t, r)
			db := openDriver(t, d.url, wharf.Options{}).DB()
			servers.Store(db, d.server)
			t.Cleanup(func() { servers.Delete(db) })
			return db
		},
		NewDriver: func(db *bun.DB, opts wharf.Options) (*wharf.Driver, error) {
			if u, ok := servers.Load(db); ok && r == pgbouncer && opts.Listen.URL == "" {
				opts.Listen.URL = u.(string)
			}
			return wharf.NewDriver(db, opts)
		},
		Capabilities: conformance.Capabilities{ConcurrentWriters: true, RemoteNotifications: true},
	}
}
