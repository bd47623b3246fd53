package ports

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Check them with errors.Is; providers wrap driver errors so
// that both the sentinel and the original error remain reachable.
var (
	// ErrInvalidArgument: the caller passed something invalid (empty topic,
	// bad identifier, non-positive limit, payload that is not JSON, ...). The
	// error text says what and how to fix it. Nothing was written.
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrClaimLost: a change to a claimed outbox message used a claim that no
	// longer holds it.
	ErrClaimLost = errors.New("outbox claim lost")

	// ErrIdempotencyMutation: Complete or Fail matched no in-progress
	// reservation.
	ErrIdempotencyMutation = errors.New("idempotency record not held")

	// ErrIdempotencyInProgress: another request holds the key (HTTP 409).
	ErrIdempotencyInProgress = errors.New("idempotent request already in progress")

	// ErrIdempotencyMismatch: the key was reused with a different request
	// (HTTP 422).
	ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")

	// ErrPublishAfterCommit: the transaction committed but publishing its
	// events failed. The data is saved; only the notification is missing.
	ErrPublishAfterCommit = errors.New("transaction committed, but publishing its events failed")

	// ErrRetryable marks transient database conditions (serialization
	// failure, deadlock, SQLITE_BUSY, lock wait timeout, a database that
	// could not be reached): running the transaction again may succeed.
	ErrRetryable = errors.New("retryable database error")

	// ErrSerialization: the database aborted a transaction to keep it
	// serializable (PostgreSQL 40001). Also matches ErrRetryable.
	ErrSerialization = errors.New("serialization failure")

	// ErrDeadlock: the database broke a deadlock by aborting this transaction
	// (PostgreSQL 40P01, MySQL 1213). Also matches ErrRetryable.
	ErrDeadlock = errors.New("deadlock detected")

	// ErrBusy: the database was locked by another writer for longer than the
	// busy timeout (SQLITE_BUSY, SQLITE_LOCKED, MySQL 1205). Also matches
	// ErrRetryable.
	ErrBusy = errors.New("database busy")

	// ErrUnavailable: the database could not be reached before anything was
	// sent to it (a refused or failed connection, too many connections, a
	// server starting up or shutting down), so nothing ran. Also matches
	// ErrRetryable. A connection that broke after a statement was sent is
	// not classified: whether that statement (a COMMIT, say) took effect is
	// unknown.
	ErrUnavailable = errors.New("database unavailable")

	// ErrLockNotAvailable: a NOWAIT lock could not be taken (PostgreSQL
	// 55P03).
	ErrLockNotAvailable = errors.New("lock not available")

	// ErrNotificationsUnavailable: an outbox's notifications cannot tell
	// this process about messages other processes commit (for example a
	// LISTEN behind a transaction-pooling proxy), so relays must poll for
	// them. See OutboxNotifier.
	ErrNotificationsUnavailable = errors.New("outbox notifications from other processes unavailable")

	// ErrUniqueViolation: an insert or update hit a unique constraint
	// (PostgreSQL 23505, MySQL 1062, SQLITE_CONSTRAINT_UNIQUE/PRIMARYKEY).
	ErrUniqueViolation = errors.New("unique constraint violation")
)

// ClaimLostError reports the claims that a batch operation could not apply.
// It matches ErrClaimLost.
type ClaimLostError struct {
	// Op is the operation: "complete", "retry", "dead-letter", "extend" or
	// "release".
	Op string
	// IDs are the message IDs whose claims were lost.
	IDs []string
}

// Error implements error.
func (e *ClaimLostError) Error() string {
	ids := e.IDs
	more := ""
	if len(ids) > 5 {
		more = fmt.Sprintf(" and %d more", len(ids)-5)
		ids = ids[:5]
	}
	return fmt.Sprintf("%s: %s of message %s%s (completed, released, dead-lettered or reclaimed after the lease expired)",
		e.Op, ErrClaimLost, strings.Join(ids, ", "), more)
}

// Is reports whether target is ErrClaimLost.
func (e *ClaimLostError) Is(target error) bool { return target == ErrClaimLost }

// IdempotencyMutationError reports a Complete or Fail that matched no
// in-progress reservation. It matches ErrIdempotencyMutation.
type IdempotencyMutationError struct {
	// Action is "complete" or "fail".
	Action    string
	Namespace string
	Key       string
	ScopeKey  string
}

// Error implements error.
func (e *IdempotencyMutationError) Error() string {
	return fmt.Sprintf("idempotency %s of namespace %q key %q scope %q: %s (never reserved, already completed or failed, or taken over after its lease expired)",
		e.Action, e.Namespace, e.Key, e.ScopeKey, ErrIdempotencyMutation)
}

// Is reports whether target is ErrIdempotencyMutation.
func (e *IdempotencyMutationError) Is(target error) bool { return target == ErrIdempotencyMutation }
