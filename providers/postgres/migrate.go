package postgres

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/providers/internal/migrate"
)

// MigrateOptions names the tables Migrate creates; the zero value means the
// default names.
type MigrateOptions struct {
	Outbox      OutboxOptions
	Idempotency IdempotencyOptions
}

// migrateLockKey is the transaction-level advisory lock that serialises
// concurrent Migrate calls on one database.
const migrateLockKey = 0x77686172 // "whar"

// Migrate creates the outbox and idempotency tables and indexes if they do
// not exist. It is safe to run on every start, and from several processes at
// once: it runs in one transaction (a savepoint when db is already one)
// holding an advisory lock, so concurrent CREATE ... IF NOT EXISTS never
// race, and a failure leaves nothing half-created. The schema of a
// schema-qualified table name must exist.
func Migrate(ctx context.Context, db bun.IDB, opts MigrateOptions) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", migrateLockKey); err != nil {
			return err
		}
		return migrate.Run(ctx, tx, "postgres",
			func() ([]string, error) { return OutboxSetupStatements(opts.Outbox) },
			func() ([]string, error) { return IdempotencySetupStatements(opts.Idempotency) },
		)
	})
}
