package sqlite

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

// Migrate creates the outbox and idempotency tables and indexes if they do
// not exist. It is safe to run on every start.
func Migrate(ctx context.Context, db bun.IDB, opts MigrateOptions) error {
	return migrate.Run(ctx, db, "sqlite",
		func() ([]string, error) { return OutboxSetupStatements(opts.Outbox) },
		func() ([]string, error) { return IdempotencySetupStatements(opts.Idempotency) },
	)
}
