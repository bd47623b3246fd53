package infra

import (
	"context"
	"log/slog"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/examples/todo/internal/app"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/mysql"
)

// mysqlSchema is the app's DDL on MySQL and MariaDB. IDs and timestamps are
// ASCII with a binary collation, as in wharf's own tables, so their order is
// byte order; titles are utf8mb4. The indexes are declared in CREATE TABLE
// (MySQL has no CREATE INDEX IF NOT EXISTS).
var mysqlSchema = []string{
	"CREATE TABLE IF NOT EXISTS todos (" + `
	id VARCHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	title VARCHAR(200) NOT NULL,
	completed_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NULL,
	created_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	updated_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	PRIMARY KEY (id),
	INDEX todos_created_idx (created_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
	"CREATE TABLE IF NOT EXISTS todo_activity (" + `
	id VARCHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	event_type VARCHAR(64) NOT NULL,
	todo_id VARCHAR(36) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	title VARCHAR(200) NOT NULL,
	occurred_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	recorded_at VARCHAR(27) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
	PRIMARY KEY (id),
	INDEX todo_activity_occurred_idx (occurred_at, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
}

func init() {
	register(MySQL, driver{
		envVar: mysql.EnvVar,
		newProvider: func(url string, logger *slog.Logger) core.Provider {
			return mysql.NewProvider(mysql.Options{URL: url, Logger: logger})
		},
		migrate: func(ctx context.Context, db bun.IDB) error {
			return mysql.Migrate(ctx, db, mysql.MigrateOptions{})
		},
		schema: execAll(mysqlSchema),
		stores: func(db *bun.DB, logger *slog.Logger) (stores, error) {
			ob, err := mysql.NewOutbox(db, mysql.OutboxOptions{Logger: logger})
			if err != nil {
				return stores{}, err
			}
			idem, err := mysql.NewIdempotency(db, mysql.IdempotencyOptions{Logger: logger})
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
			return mysql.NewUnitOfWork(db, build, mysql.UnitOfWorkOptions{Logger: logger})
		},
	})
}
