package infra

import (
	"context"
	"log/slog"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/examples/todo/internal/app"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/postgres"
)

// postgresSchema is the app's DDL on PostgreSQL. IDs and timestamps are
// COLLATE "C", as in wharf's own tables, so their order is byte order
// whatever the database's locale.
var postgresSchema = []string{
	`CREATE TABLE IF NOT EXISTS todos (
	id VARCHAR(36) COLLATE "C" NOT NULL PRIMARY KEY,
	title VARCHAR(200) NOT NULL,
	completed_at VARCHAR(27) COLLATE "C",
	created_at VARCHAR(27) COLLATE "C" NOT NULL,
	updated_at VARCHAR(27) COLLATE "C" NOT NULL
)`,
	`CREATE INDEX IF NOT EXISTS todos_created_idx ON todos (created_at, id)`,
	`CREATE TABLE IF NOT EXISTS todo_activity (
	id VARCHAR(36) COLLATE "C" NOT NULL PRIMARY KEY,
	event_type VARCHAR(64) NOT NULL,
	todo_id VARCHAR(36) COLLATE "C" NOT NULL,
	title VARCHAR(200) NOT NULL,
	occurred_at VARCHAR(27) COLLATE "C" NOT NULL,
	recorded_at VARCHAR(27) COLLATE "C" NOT NULL
)`,
	`CREATE INDEX IF NOT EXISTS todo_activity_occurred_idx ON todo_activity (occurred_at, id)`,
}

// postgresSchemaLock serialises concurrent migrations of several app
// instances (CREATE ... IF NOT EXISTS alone can race on PostgreSQL).
const postgresSchemaLock = 0x746f646f // "todo"

func init() {
	register(Postgres, driver{
		envVar: postgres.EnvVar,
		newProvider: func(url string, logger *slog.Logger) core.Provider {
			return postgres.NewProvider(postgres.Options{URL: url, Logger: logger})
		},
		migrate: func(ctx context.Context, db bun.IDB) error {
			return postgres.Migrate(ctx, db, postgres.MigrateOptions{})
		},
		schema: func(ctx context.Context, db bun.IDB) error {
			return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
				if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", postgresSchemaLock); err != nil {
					return err
				}
				return execAll(postgresSchema)(ctx, tx)
			})
		},
		stores: func(db *bun.DB, logger *slog.Logger) (stores, error) {
			ob, err := postgres.NewOutbox(db, postgres.OutboxOptions{Logger: logger})
			if err != nil {
				return stores{}, err
			}
			idem, err := postgres.NewIdempotency(db, postgres.IdempotencyOptions{Logger: logger})
			if err != nil {
				return stores{}, err
			}
			return stores{
				outbox:         ob,
				outboxFor:      func(tx bun.IDB) ports.Outbox { return ob.WithDB(tx) },
				idempotency:    idem,
				idempotencyFor: func(tx bun.IDB) ports.Idempotency { return idem.WithDB(tx) },
			}, nil
		},
		unitOfWork: func(db *bun.DB, build buildFunc, logger *slog.Logger) (ports.UnitOfWork[app.TxPorts], error) {
			return postgres.NewUnitOfWork(db, build, postgres.UnitOfWorkOptions{Logger: logger})
		},
	})
}
