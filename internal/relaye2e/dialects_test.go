// Package relaye2e runs relay.Relay in separate operating-system processes
// against real databases: workers killed with SIGKILL mid-handler, several
// relay processes sharing one outbox under concurrent producers, and the
// enqueue-to-handler latency with and without notifications.
//
// The test binary re-executes itself: TestMain runs a child (a relay in one
// of the modes of child_test.go) when WHARF_RELAYE2E_MODE is set. Each test
// runs once per entry of dialects; add a database by adding an entry.
package relaye2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/providers/mysql"
	"github.com/wharf-go/wharf/providers/postgres"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// openFunc opens a driver on a URL: a provider's Open.
type openFunc func(ctx context.Context, url string, opts wharf.Options) (*wharf.Driver, error)

// dialect connects the tests to one database.
type dialect struct {
	// name is the subtest name, and how a child finds its dialect.
	name string
	// newDB creates an isolated database (a file, a schema, a database)
	// holding the default tables, removed when the test ends, and returns
	// the URL every process opens.
	newDB func(t testing.TB) string
	// open opens a driver on a URL returned by newDB.
	open openFunc
}

var dialects = []dialect{
	{name: "SQLite", newDB: newSQLiteDB, open: sqlite.Open},
	{name: "PostgreSQL", newDB: newPostgresDB, open: postgres.Open},
	{name: "MariaDB", newDB: newMySQLDB, open: mysql.Open},
}

func dialectNamed(name string) (dialect, error) {
	for _, d := range dialects {
		if d.name == name {
			return d, nil
		}
	}
	return dialect{}, fmt.Errorf("relaye2e: unknown dialect %q", name)
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// openDriver opens a driver on url for the parent process with opts,
// closed when the test ends.
func openDriver(t testing.TB, d dialect, url string, opts wharf.Options) *wharf.Driver {
	t.Helper()
	return openWith(t, d.open, url, opts)
}

func openWith(t testing.TB, open openFunc, url string, opts wharf.Options) *wharf.Driver {
	t.Helper()
	drv, err := open(context.Background(), url, opts)
	require.NoError(t, err, "open the test database")
	t.Cleanup(func() { _ = drv.Close() })
	return drv
}

// migrate creates the driver's tables on url.
func migrate(t testing.TB, open openFunc, url string) {
	t.Helper()
	require.NoError(t, openWith(t, open, url, wharf.Options{}).Migrate(context.Background()))
}

func newSQLiteDB(t testing.TB) string {
	t.Helper()
	u := "file:" + filepath.Join(t.TempDir(), "relaye2e.db")
	migrate(t, sqlite.Open, u)
	return u
}

// newPostgresDB creates a schema of its own and returns a URL whose
// connections use it (search_path).
func newPostgresDB(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	base := testdb.URL(t, testdb.PostgresEnv)
	admin, err := postgres.Open(ctx, base, wharf.Options{})
	require.NoError(t, err)
	schema := randomName("wharf_e2e_")
	_, err = admin.DB().ExecContext(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.DB().ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		_ = admin.Close()
		require.NoError(t, err, "drop schema %s", schema)
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	migrate(t, postgres.Open, u.String())
	return u.String()
}

// newMySQLDB creates a database of its own and returns its URL.
func newMySQLDB(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	base := testdb.URL(t, testdb.MySQLEnv)
	admin, err := mysql.Open(ctx, base, wharf.Options{})
	require.NoError(t, err)
	name := randomName("wharf_e2e_")
	_, err = admin.DB().ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.DB().ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`")
		_ = admin.Close()
		require.NoError(t, err, "drop database %s", name)
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "/" + name
	migrate(t, mysql.Open, u.String())
	return u.String()
}
