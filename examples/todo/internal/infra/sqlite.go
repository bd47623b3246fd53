package infra

import (
	"context"
	"log/slog"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/examples/todo/internal/app"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// sqliteSchema is the app's DDL on SQLite: bounded VARCHAR columns and
// core.TimeFormat text timestamps, whose string order is their time order,
// with the (timestamp, id) indexes that keyset pagination walks.
var sqliteSchema = []string{
	`CREATE TABLE IF NOT EXISTS todos (
	id VARCHAR(36) NOT NULL PRIMARY KEY,
	title VARCHAR(200) NOT NULL,
	completed_at VARCHAR(27),
	created_at VARCHAR(27) NOT NULL,
	updated_at VARCHAR(27) NOT NULL
)`,
	`CREATE INDEX IF NOT EXISTS todos_created_idx ON todos (created_at, id)`,
	`CREATE TABLE IF NOT EXISTS todo_activity (
	id VARCHAR(36) NOT NULL PRIMARY KEY,
	event_type VARCHAR(64) NOT NULL,
	todo_id VARCHAR(36) NOT NULL,
	title VARCHAR(200) NOT NULL,
	occurred_at VARCHAR(27) NOT NULL,
	recorded_at VARCHAR(27) NOT NULL
)`,
	`CREATE INDEX IF NOT EXISTS todo_activity_occurred_idx ON todo_activity (occurred_at, id)`,
}

func init() {
	register(SQLite, driver{
		envVar: sqlite.EnvVar,
		newProvider: func(url string, logger *slog.Logger) core.Provider {
			return sqlite.NewProvider(sqlite.Options{URL: url, Logger: logger})
		},
		migrate: func(ctx context.Context, db bun.IDB) error {
			return sqlite.Migrate(ctx, db, sqlite.MigrateOptions{})
		},
		schema: execAll(sqliteSchema),
		stores: func(db *bun.DB, logger *slog.Logger) (stores, error) {
			ob, err := sqlite.NewOutbox(db, sqlite.OutboxOptions{Logger: logger})
			if err != nil {
				return stores{}, err
			}
			idem, err := sqlite.NewIdempotency(db, sqlite.IdempotencyOptions{Logger: logger})
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
			return sqlite.NewUnitOfWork(db, build, sqlite.UnitOfWorkOptions{Logger: logger})
		},
	})
}
