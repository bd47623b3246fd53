package postgres

import (
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/internal/txn"
)

// UnitOfWorkOptions configures NewUnitOfWork: EventBus (after-commit
// publishing), TxOptions (isolation level and read-only, passed to BEGIN),
// MaxAttempts (default 3; 1 disables retries), RetryDelay, Logger.
type UnitOfWorkOptions = txn.Options

// UnitOfWork implements ports.UnitOfWork[T] on PostgreSQL. Serialization
// failures (40001, common under REPEATABLE READ and SERIALIZABLE) and
// deadlocks (40P01) re-run the transaction.
type UnitOfWork[T any] = txn.UnitOfWork[T]

// NewUnitOfWork returns a unit of work on db that calls build once per
// transaction to make T from the transaction handle and the after-commit
// event recorder.
func NewUnitOfWork[T any](db *bun.DB, build func(tx bun.IDB, events ports.EventRecorder) (T, error), opts UnitOfWorkOptions) (*UnitOfWork[T], error) {
	return txn.New(db, build, opts, TranslateError)
}
