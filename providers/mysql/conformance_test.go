package mysql_test

import (
	"context"
	"database/sql"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/conformance"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/mysql"
)

// testPoolSize keeps each test's pool small: about a hundred conformance
// tests run in parallel against one server (max_connections=300).
const testPoolSize = 10

var admin struct {
	once sync.Once
	db   *sql.DB
	err  error
}

// adminDB is a connection to the server's test database, used to create and
// drop the per-test databases. It lives as long as the test binary.
func adminDB(t testing.TB, serverURL string) *sql.DB {
	t.Helper()
	admin.once.Do(func() {
		var db *bun.DB
		db, admin.err = mysql.Open(context.Background(), serverURL)
		if admin.err == nil {
			admin.db = db.DB
			admin.db.SetMaxOpenConns(4)
		}
	})
	require.NoError(t, admin.err, "open the admin connection to %s", testdb.MySQLEnv)
	return admin.db
}

// newDatabase creates a fresh database with a random name and returns a URL
// connecting to it; the database is dropped in t.Cleanup.
func newDatabase(t testing.TB) (dbURL, name string) {
	t.Helper()
	serverURL := testdb.URL(t, testdb.MySQLEnv)
	adm := adminDB(t, serverURL)
	name = "wharf_t_" + core.NewToken()[:16]
	_, err := adm.ExecContext(context.Background(), "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := adm.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`")
		require.NoError(t, err, "drop test database %s", name)
	})
	u, err := url.Parse(serverURL)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String(), name
}

// openURL opens rawURL with a small pool and closes it in t.Cleanup.
func openURL(t testing.TB, rawURL string) *bun.DB {
	t.Helper()
	db, err := mysql.Open(context.Background(), rawURL)
	require.NoError(t, err)
	db.SetMaxOpenConns(testPoolSize)
	db.SetMaxIdleConns(testPoolSize)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// newTestDB returns a handle on a fresh, empty database.
func newTestDB(t testing.TB) *bun.DB {
	t.Helper()
	dbURL, _ := newDatabase(t)
	return openURL(t, dbURL)
}

func harness() conformance.Harness {
	return conformance.Harness{
		NewDB: newTestDB,
		Migrate: func(ctx context.Context, db bun.IDB, outboxTable, idemTable string) error {
			return mysql.Migrate(ctx, db, mysql.MigrateOptions{
				Outbox:      mysql.OutboxOptions{TableName: outboxTable},
				Idempotency: mysql.IdempotencyOptions{TableName: idemTable},
			})
		},
		NewOutbox: func(db bun.IDB, cfg conformance.OutboxConfig) (conformance.Outbox, error) {
			o, err := mysql.NewOutbox(db, mysql.OutboxOptions{TableName: cfg.TableName, Now: cfg.Now, DefaultMaxAttempts: cfg.DefaultMaxAttempts})
			if err != nil {
				return nil, err
			}
			return o, nil
		},
		NewIdempotency: func(db bun.IDB, cfg conformance.IdempotencyConfig) (ports.Idempotency, error) {
			s, err := mysql.NewIdempotency(db, mysql.IdempotencyOptions{TableName: cfg.TableName, Now: cfg.Now, TTL: cfg.TTL, Lease: cfg.Lease})
			if err != nil {
				return nil, err
			}
			return s, nil
		},
		NewUnitOfWork: func(db *bun.DB, cfg conformance.UnitOfWorkConfig, build func(bun.IDB, ports.EventRecorder) (conformance.TxPorts, error)) ports.UnitOfWork[conformance.TxPorts] {
			u, err := mysql.NewUnitOfWork(db, build, mysql.UnitOfWorkOptions{EventBus: cfg.EventBus, MaxAttempts: cfg.MaxAttempts})
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
