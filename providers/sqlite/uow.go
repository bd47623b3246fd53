package sqlite

import (
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/internal/txn"
)

// UnitOfWorkOptions configures NewUnitOfWork: EventBus (after-commit
// publishing), TxOptions, MaxAttempts (default 3; 1 disables retries),
// RetryDelay, Logger.
type UnitOfWorkOptions = txn.Options

// UnitOfWork implements ports.UnitOfWork[T] on SQLite. SQLITE_BUSY and
// SQLITE_LOCKED re-run the transaction.
type UnitOfWork[T any] = txn.UnitOfWork[T]

// NewUnitOfWork returns a unit of work on db that calls build once per
// transaction to make T from the transaction handle and the after-commit
// event recorder.
func NewUnitOfWork[T any](db *bun.DB, build func(tx bun.IDB, events ports.EventRecorder) (T, error), opts UnitOfWorkOptions) (*UnitOfWork[T], error) {
	if db == nil {
		return txn.New(db, build, opts, TranslateError) // reports the nil handle
	}
	return txn.NewGated(db, build, opts, TranslateError, gateFor(db.DB))
}
