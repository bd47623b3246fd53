// Package conformance is wharf's exported behaviour suite. Every provider
// (and any provider an application writes) runs the same tests:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{ ... })
//	}
//
// The harness supplies factories, not instances: each factory receives t and
// registers its own cleanup, and every test gets an isolated, migrated
// database. Dialect gaps are declared as Capabilities, never tested by name.
package conformance

import (
	"context"
	"testing"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/ports"
)

// Outbox is what the suite needs of an outbox: the port and its admin
// interface.
type Outbox interface {
	ports.Outbox
	ports.OutboxAdmin
}

// OutboxConfig configures an outbox built by the harness.
type OutboxConfig struct {
	// TableName; empty means the provider's default ("outbox_messages").
	TableName string
	// Now is the clock; nil means the real clock.
	Now func() time.Time
	// DefaultMaxAttempts; zero means the provider's default.
	DefaultMaxAttempts int
}

// IdempotencyConfig configures an idempotency store built by the harness.
type IdempotencyConfig struct {
	// TableName; empty means the provider's default ("idempotency_records").
	TableName string
	// Now is the clock; nil means the real clock.
	Now func() time.Time
	// TTL and Lease defaults; zero means the provider's defaults.
	TTL   time.Duration
	Lease time.Duration
}

// UnitOfWorkConfig configures a unit of work built by the harness.
type UnitOfWorkConfig struct {
	// EventBus receives events after commit; nil means none.
	EventBus ports.EventBus
	// MaxAttempts for retryable conflicts; zero means the provider's default.
	MaxAttempts int
}

// TxPorts is the suite's set of transaction-scoped ports.
type TxPorts struct {
	// DB is the transaction handle.
	DB bun.IDB
	// Events is the unit of work's after-commit recorder.
	Events ports.EventRecorder
}

// Capabilities declares what a database can and cannot do, so tests adapt
// without naming dialects.
type Capabilities struct {
	// ConcurrentWriters is true when write transactions run concurrently
	// (PostgreSQL, MySQL) rather than one at a time (SQLite).
	ConcurrentWriters bool
}

// Harness connects the suite to one provider. Every function is required.
type Harness struct {
	// NewDB returns a handle on a fresh, isolated, empty database and
	// registers its cleanup with t.Cleanup.
	NewDB func(t testing.TB) *bun.DB
	// Migrate creates the outbox and idempotency tables with these names
	// (empty means the defaults). It must be idempotent.
	Migrate func(ctx context.Context, db bun.IDB, outboxTable, idempotencyTable string) error
	// NewOutbox builds an outbox on db (a *bun.DB or a bun.Tx).
	NewOutbox func(db bun.IDB, cfg OutboxConfig) (Outbox, error)
	// NewIdempotency builds an idempotency store on db.
	NewIdempotency func(db bun.IDB, cfg IdempotencyConfig) (ports.Idempotency, error)
	// NewUnitOfWork builds a unit of work on db that calls build for every
	// transaction.
	NewUnitOfWork func(db *bun.DB, cfg UnitOfWorkConfig, build func(tx bun.IDB, events ports.EventRecorder) (TxPorts, error)) ports.UnitOfWork[TxPorts]
	// Capabilities of the database.
	Capabilities Capabilities
}
