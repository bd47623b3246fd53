package mysql_test

import (
	"context"
	"database/sql"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/conformance"
	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/internal/testdb"
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
		var drv *wharf.Driver
		drv, admin.err = mysql.Open(context.Background(), serverURL, wharf.Options{Pool: wharf.PoolOptions{MaxOpenConns: 4}})
		if admin.err == nil {
			admin.db = drv.DB().DB // the driver stays open as long as the process
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
	name = "wharf_t_" + sqlbase.NewToken()[:16]
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

// openDriver opens rawURL with a small pool (unless opts.Pool asks for
// another) and closes it in t.Cleanup.
func openDriver(t testing.TB, rawURL string, opts wharf.Options) *wharf.Driver {
	t.Helper()
	if opts.Pool.MaxOpenConns == 0 {
		opts.Pool.MaxOpenConns = testPoolSize
	}
	drv, err := mysql.Open(context.Background(), rawURL, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	return drv
}

// newTestDriver opens a driver on a fresh, empty database.
func newTestDriver(t testing.TB, opts wharf.Options) *wharf.Driver {
	t.Helper()
	dbURL, _ := newDatabase(t)
	return openDriver(t, dbURL, opts)
}

// newTestDB returns the pool of a fresh, empty database; its driver stays
// open until the test ends.
func newTestDB(t testing.TB) *bun.DB {
	t.Helper()
	return newTestDriver(t, wharf.Options{}).DB()
}

// newDriver returns another driver on the pool of db, with other options,
// closed when the test ends.
func newDriver(t testing.TB, db *bun.DB, opts wharf.Options) *wharf.Driver {
	t.Helper()
	drv, err := wharf.NewDriver(db, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	return drv
}

func TestConformance(t *testing.T) {
	conformance.Run(t, conformance.Harness{
		NewDB:        newTestDB,
		Capabilities: conformance.Capabilities{ConcurrentWriters: true},
	})
}
