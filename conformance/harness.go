// Package conformance is wharf's exported behaviour suite. Every provider
// runs the same tests, and so can an application's own wiring of a driver
// (its pool, its hooks, its proxy, its table names):
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{NewDB: newTestDB})
//	}
//
// The harness supplies factories, not instances: NewDB receives t and
// registers its own cleanup, and every test gets an isolated database.
// Dialect gaps are declared as Capabilities, never tested by name.
package conformance

import (
	"testing"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
)

// Capabilities declares what a database can do beyond what every dialect
// does, so that the tests that need it run only where it exists.
type Capabilities struct {
	// ConcurrentWriters is true when write transactions run side by side
	// (PostgreSQL, MySQL), so that one can commit late while others claim;
	// false when they run one at a time (SQLite).
	ConcurrentWriters bool
	// RemoteNotifications is true when a driver is woken by messages that
	// another driver, on another pool (another process), commits: the
	// database carries notifications between connections (PostgreSQL
	// LISTEN/NOTIFY). Every driver wakes its own process's relays.
	RemoteNotifications bool
}

// Harness connects the suite to a database.
type Harness struct {
	// NewDB returns a handle on a fresh, isolated, empty database (a new
	// file, schema or database) and registers its cleanup with t.Cleanup.
	// Required.
	NewDB func(t testing.TB) *bun.DB
	// NewDriver returns a driver on db with opts; nil means wharf.NewDriver.
	// The suite closes what it returns.
	NewDriver func(db *bun.DB, opts wharf.Options) (*wharf.Driver, error)
	// Capabilities of the database.
	Capabilities Capabilities
}
