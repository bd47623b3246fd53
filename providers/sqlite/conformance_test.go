package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/conformance"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/sqlite"
)

func newTestDB(t testing.TB) *bun.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "wharf.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func harness() conformance.Harness {
	return conformance.Harness{
		NewDB: newTestDB,
		Migrate: func(ctx context.Context, db bun.IDB, outboxTable, idemTable string) error {
			return sqlite.Migrate(ctx, db, sqlite.MigrateOptions{
				Outbox:      sqlite.OutboxOptions{TableName: outboxTable},
				Idempotency: sqlite.IdempotencyOptions{TableName: idemTable},
			})
		},
		NewOutbox: func(db bun.IDB, cfg conformance.OutboxConfig) (conformance.Outbox, error) {
			o, err := sqlite.NewOutbox(db, sqlite.OutboxOptions{TableName: cfg.TableName, Now: cfg.Now, DefaultMaxAttempts: cfg.DefaultMaxAttempts})
			if err != nil {
				return nil, err
			}
			return o, nil
		},
		NewIdempotency: func(db bun.IDB, cfg conformance.IdempotencyConfig) (ports.Idempotency, error) {
			s, err := sqlite.NewIdempotency(db, sqlite.IdempotencyOptions{TableName: cfg.TableName, Now: cfg.Now, TTL: cfg.TTL, Lease: cfg.Lease})
			if err != nil {
				return nil, err
			}
			return s, nil
		},
		NewUnitOfWork: func(db *bun.DB, cfg conformance.UnitOfWorkConfig, build func(bun.IDB, ports.EventRecorder) (conformance.TxPorts, error)) ports.UnitOfWork[conformance.TxPorts] {
			u, err := sqlite.NewUnitOfWork(db, build, sqlite.UnitOfWorkOptions{EventBus: cfg.EventBus, MaxAttempts: cfg.MaxAttempts})
			if err != nil {
				panic(err)
			}
			return u
		},
		Capabilities: conformance.Capabilities{ConcurrentWriters: false},
	}
}

func TestConformance(t *testing.T) {
	conformance.Run(t, harness())
}
