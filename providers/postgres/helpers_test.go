package postgres_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/providers/postgres"
)

// testPoolSize bounds each test's pool: about a hundred tests run, a few at
// a time, against a server with max_connections = 300.
const testPoolSize = 10

// baseURL returns the server URL, or skips (fails under CI=true).
func baseURL(t testing.TB) string {
	t.Helper()
	return testdb.URL(t, testdb.PostgresEnv)
}

var admin struct {
	once sync.Once
	db   *sql.DB
	err  error
}

// adminDB is a small pool on the server's database (default search_path)
// for creating and dropping test schemas. It lives as long as the process.
func adminDB(t testing.TB) *sql.DB {
	t.Helper()
	u := baseURL(t)
	admin.once.Do(func() {
		cfg, err := pgx.ParseConfig(u)
		if err != nil {
			admin.err = err
			return
		}
		admin.db = stdlib.OpenDB(*cfg)
		admin.db.SetMaxOpenConns(4)
	})
	require.NoError(t, admin.err)
	return admin.db
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// newSchema creates a schema with a random name, dropped (CASCADE) when the
// test ends, and returns it with a server URL whose connections use it as
// search_path.
func newSchema(t testing.TB) (schema, schemaURL string) {
	t.Helper()
	base := baseURL(t)
	schema = randomName("wharf_t_")
	db := adminDB(t)
	_, err := db.ExecContext(context.Background(), "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := db.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema, withParam(t, base, "search_path", schema)
}

// withParam returns rawURL with the query parameter k set to v.
func withParam(t testing.TB, rawURL, k, v string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

// openDriver opens rawURL with a small pool (unless opts.Pool asks for
// another), closed when the test ends.
func openDriver(t testing.TB, rawURL string, opts wharf.Options) *wharf.Driver {
	t.Helper()
	if opts.Pool.MaxOpenConns == 0 {
		opts.Pool.MaxOpenConns = testPoolSize
	}
	drv, err := postgres.Open(context.Background(), rawURL, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	return drv
}

// newTestDriver opens a driver on a fresh schema (search_path), dropped
// when the test ends.
func newTestDriver(t testing.TB, opts wharf.Options) *wharf.Driver {
	t.Helper()
	_, u := newSchema(t)
	return openDriver(t, u, opts)
}

// newDriver returns another driver on the pool of db, with other options
// (its own outbox and listener), closed when the test ends.
func newDriver(t testing.TB, db *bun.DB, opts wharf.Options) *wharf.Driver {
	t.Helper()
	drv, err := wharf.NewDriver(db, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	return drv
}

// newTestDB returns the pool of a fresh schema; its driver stays open until
// the test ends.
func newTestDB(t testing.TB) *bun.DB {
	t.Helper()
	return newTestDriver(t, wharf.Options{}).DB()
}

// migratedDriver is newTestDriver with the default tables created.
func migratedDriver(t testing.TB) *wharf.Driver {
	t.Helper()
	drv := newTestDriver(t, wharf.Options{})
	require.NoError(t, drv.Migrate(context.Background()))
	return drv
}
