package conformance

import (
	"testing"
)

// Run runs the conformance suite against the provider that h connects. Each
// test gets its own database from h.NewDB, migrated with h.Migrate, and runs
// in parallel with the other tests of its group:
//
//   - UnitOfWork: commit, rollback, panics, retries of retryable errors,
//     nested transactions and events published after commit.
//   - Outbox: enqueue, claim order and leases, per-key ordering, retries,
//     dead letters, claim fencing, validation, storage format and the admin
//     interface.
//   - Concurrency: concurrent claimers, producers and transactions.
//   - Idempotency: reservations, replays, takeovers, fencing, scopes,
//     validation, races and atomicity with business writes.
//   - Relay: core's relay on the provider's outbox — delivery, retries with
//     backoff, dead letters, permanent errors, unknown topics, panics, lease
//     extension, graceful shutdown releasing claims, competing relays and
//     the effectively-once wrapper.
func Run(t *testing.T, h Harness) {
	t.Helper()
	validateHarness(t, h)

	t.Run("UnitOfWork", func(t *testing.T) { runGroup(t, h, unitOfWorkTests()) })
	t.Run("Outbox", func(t *testing.T) { runGroup(t, h, outboxTests()) })
	t.Run("Concurrency", func(t *testing.T) { runGroup(t, h, concurrencyTests()) })
	t.Run("Idempotency", func(t *testing.T) { runGroup(t, h, idempotencyTests()) })
	t.Run("Relay", func(t *testing.T) { runGroup(t, h, relayTests()) })
}

// validateHarness fails the test when a required harness function is nil.
func validateHarness(t *testing.T, h Harness) {
	t.Helper()
	missing := []struct {
		name string
		nil  bool
	}{
		{"NewDB", h.NewDB == nil},
		{"Migrate", h.Migrate == nil},
		{"NewOutbox", h.NewOutbox == nil},
		{"NewIdempotency", h.NewIdempotency == nil},
		{"NewUnitOfWork", h.NewUnitOfWork == nil},
	}
	for _, m := range missing {
		if m.nil {
			t.Fatalf("conformance: Harness.%s is nil; every harness function is required", m.name)
		}
	}
}

// outboxTests are the tests of the Outbox group: the port (outbox.go) and
// its admin interface (outbox_admin.go).
func outboxTests() []testCase {
	return append(outboxPortTests(), outboxAdminTests()...)
}
