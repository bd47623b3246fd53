package mysql

import (
	"context"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/providers/internal/migrate"
)

// MigrateOptions names the tables Migrate creates; the zero value means the
// default names. A name may be database-qualified ("otherdb.outbox_messages");
// that database must exist.
type MigrateOptions struct {
	Outbox      OutboxOptions
	Idempotency IdempotencyOptions
}

// Migrate creates the outbox and idempotency tables (with their indexes) if
// they do not exist. It is safe to run on every start. MySQL commits DDL
// implicitly, so do not run it inside a transaction you mean to roll back.
func Migrate(ctx context.Context, db bun.IDB, opts MigrateOptions) error {
	return migrate.Run(ctx, db, "mysql",
		func() ([]string, error) { return OutboxSetupStatements(opts.Outbox) },
		func() ([]string, error) { return IdempotencySetupStatements(opts.Idempotency) },
	)
}
