package postgres_test

import (
	"context"
	"testing"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/conformance"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/postgres"
)

// harness gives every conformance test a fresh schema of its own on the
// server of WHARF_TEST_POSTGRES_URL, reached through search_path.
func harness() conformance.Harness {
	return conformance.Harness{
		NewDB: newTestDB,
		Migrate: func(ctx context.Context, db bun.IDB, outboxTable, idemTable string) error {
			return postgres.Migrate(ctx, db, postgres.MigrateOptions{
				Outbox:      postgres.OutboxOptions{TableName: outboxTable},
				Idempotency: postgres.IdempotencyOptions{TableName: idemTable},
			})
		},
		NewOutbox: func(db bun.IDB, cfg conformance.OutboxConfig) (conformance.Outbox, error) {
			o, err := postgres.NewOutbox(db, postgres.OutboxOptions{TableName: cfg.TableName, Now: cfg.Now, DefaultMaxAttempts: cfg.DefaultMaxAttempts})
			if err != nil {
				return nil, err
			}
			return o, nil
		},
		NewIdempotency: func(db bun.IDB, cfg conformance.IdempotencyConfig) (ports.Idempotency, error) {
			s, err := postgres.NewIdempotency(db, postgres.IdempotencyOptions{TableName: cfg.TableName, Now: cfg.Now, TTL: cfg.TTL, Lease: cfg.Lease})
			if err != nil {
				return nil, err
			}
			return s, nil
		},
		NewUnitOfWork: func(db *bun.DB, cfg conformance.UnitOfWorkConfig, build func(bun.IDB, ports.EventRecorder) (conformance.TxPorts, error)) ports.UnitOfWork[conformance.TxPorts] {
			u, err := postgres.NewUnitOfWork(db, build, postgres.UnitOfWorkOptions{EventBus: cfg.EventBus, MaxAttempts: cfg.MaxAttempts})
			if err != nil {
				panic(err)
			}
			return u
		},
		Capabilities: conformance.Capabilities{ConcurrentWriters: true},
	}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, harness())
}
