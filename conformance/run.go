package conformance

import (
	"testing"

	"github.com/wharf-go/wharf"
)

// Run runs the conformance suite against the database that h connects.
// Each test gets its own database from h.NewDB, migrated by a driver from
// h.NewDriver, and runs in parallel with the other tests of its group:
//
//   - UnitOfWork: commit, rollback, panics, retries of retryable errors,
//     nested transactions and events published after commit.
//   - Outbox: enqueue, claim order and leases, per-key ordering, retries,
//     dead letters, claim fencing, validation, storage format, schema and
//     the admin interface.
//   - Concurrency: concurrent claimers, producers and transactions.
//   - Idempotency: reservations, replays, takeovers, fencing, scopes,
//     validation, races and atomicity with business writes.
//   - Relay: core/relay on the driver's outbox — delivery, retries with
//     backoff, dead letters, permanent errors, unknown topics, panics, lease
//     extension, graceful shutdown releasing claims, wake-ups, competing
//     relays and the effectively-once wrappers.
//   - Hooks: core.Hooks see every operation, the trace context travels from
//     the enqueue to the handler, and the query log never shows parameter
//     values unless asked to.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.NewDB == nil {
		t.Fatal("conformance: Harness.NewDB is nil; it must return a fresh, isolated database")
	}
	if h.NewDriver == nil {
		h.NewDriver = wharf.NewDriver
	}
	t.Run("UnitOfWork", func(t *testing.T) { runGroup(t, h, unitOfWorkTests()) })
	t.Run("Outbox", func(t *testing.T) { runGroup(t, h, outboxTests()) })
	t.Run("Concurrency", func(t *testing.T) { runGroup(t, h, concurrencyTests()) })
	t.Run("Idempotency", func(t *testing.T) { runGroup(t, h, idempotencyTests()) })
	t.Run("Relay", func(t *testing.T) { runGroup(t, h, relayTests()) })
	t.Run("Hooks", func(t *testing.T) { runGroup(t, h, append(hookTests(), queryLogTests()...)) })
}

// outboxTests are the tests of the Outbox group: the port (outbox.go) and
// its admin interface (outbox_admin.go).
func outboxTests() []testCase {
	return append(outboxPortTests(), outboxAdminTests()...)
}
