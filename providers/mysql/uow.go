package mysql

import (
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/internal/txn"
)

// UnitOfWorkOptions configures NewUnitOfWork: EventBus (after-commit
// publishing), TxOptions (isolation level; the server's default, usually
// REPEATABLE READ, when nil), MaxAttempts (default 3; 1 disables retries),
// RetryDelay, Logger.
type UnitOfWorkOptions = txn.Options

// UnitOfWork implements ports.UnitOfWork[T] on MySQL and MariaDB. Deadlocks
// (1213), lock wait timeouts (1205) and too many connections (1040, 1203)
// re-run the transaction; on any error the transaction is rolled back first
// (a lock wait timeout alone would leave it open).
type UnitOfWork[T any] = txn.UnitOfWork[T]

// NewUnitOfWork returns a unit of work on db that calls build once per
// transaction to make T from the transaction handle and the after-commit
// event recorder.
func NewUnitOfWork[T any](db *bun.DB, build func(tx bun.IDB, events ports.EventRecorder) (T, error), opts UnitOfWorkOptions) (*UnitOfWork[T], error) {
	return txn.New(db, build, opts, TranslateError)
}
