package ports

import "context"

// UnitOfWork runs a function inside one database transaction and hands it the
// application's transaction-scoped ports (T), built afresh for that
// transaction.
type UnitOfWork[T any] interface {
	// Transaction begins a transaction, builds T for it and calls fn.
	//
	// It commits when fn returns nil and rolls back when fn returns an error
	// (returned unchanged, or wrapped with the provider's classification) or
	// panics (the panic is re-raised after the rollback).
	//
	// Events recorded for publication after the commit (the provider's
	// after-commit recorder, handed to T's builder) are published to the
	// configured EventBus only after a successful commit, never after a
	// rollback. If publishing fails after the commit, the returned error
	// matches ErrPublishAfterCommit: the data was committed. (Events that
	// must not be lost go through the outbox instead, in the transaction.)
	//
	// If ctx already carries a transaction of this unit of work (fn's own ctx
	// does), Transaction joins it: no second BEGIN, fn receives the same T, and
	// the outer call decides commit or rollback.
	//
	// Errors that match ErrRetryable (serialization failures, deadlocks,
	// SQLITE_BUSY, lock wait timeouts), whether returned by fn, by BEGIN or by
	// COMMIT, roll back and re-run fn with a fresh transaction and a fresh T,
	// up to the configured number of attempts; the events recorded by a failed
	// attempt are dropped. fn must therefore be safe to re-run.
	Transaction(ctx context.Context, fn func(ctx context.Context, tx T) error) error
}
