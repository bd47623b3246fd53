// Package relaye2e runs core.Relay in separate operating-system processes
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
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/mysql"
	"github.com/wharf-go/wharf/providers/postgres"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// outbox is what the tests need of an outbox.
type outbox interface {
	ports.Outbox
	ports.OutboxAdmin
}

// dialect connects the tests to one database.
type dialect struct {
	// name is the subtest name, and how a child finds its dialect.
	name string
	// newDB creates an isolated database (a file, a schema, a database)
	// holding the default outbox table, removed when the test ends, and
	// returns the URL every process opens.
	newDB func(t testing.TB) string
	// open opens a URL returned by newDB.
	open func(ctx context.Context, url string) (*bun.DB, error)
	// newOutbox builds the default outbox on db with clock now.
	newOutbox func(db *bun.DB, now func() time.Time) (outbox, error)
}

var dialects = []dialect{
	{
		name:  "SQLite",
		newDB: newSQLiteDB,
		open:  sqlite.Open,
		newOutbox: func(db *bun.DB, now func() time.Time) (outbox, error) {
			return nilSafe(sqlite.NewOutbox(db, sqlite.OutboxOptions{Now: now}))
		},
	},
	{
		name:  "PostgreSQL",
		newDB: newPostgresDB,
		open:  postgres.Open,
		newOutbox: func(db *bun.DB, now func() time.Time) (outbox, error) {
			return nilSafe(postgres.NewOutbox(db, postgres.OutboxOptions{Now: now}))
		},
	},
	{
		name:  "MariaDB",
		newDB: newMySQLDB,
		open:  mysql.Open,
		newOutbox: func(db *bun.DB, now func() time.Time) (outbox, error) {
			return nilSafe(mysql.NewOutbox(db, mysql.OutboxOptions{Now: now}))
		},
	},
}

// nilSafe turns a typed nil outbox into a nil interface.
func nilSafe[O outbox](o O, err error) (outbox, error) {
	if err != nil {
		return nil, err
	}
	return o, nil
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

// openDB opens url for the parent process, closed when the test ends.
func openDB(t testing.TB, d dialect, url string) *bun.DB {
	t.Helper()
	return openWith(t, d.open, url)
}

func openWith(t testing.TB, open func(context.Context, string) (*bun.DB, error), url string) *bun.DB {
	t.Helper()
	db, err := open(context.Background(), url)
	require.NoError(t, err, "open the test database")
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newSQLiteDB(t testing.TB) string {
	t.Helper()
	u := "file:" + filepath.Join(t.TempDir(), "relaye2e.db")
	db := openWith(t, sqlite.Open, u)
	require.NoError(t, sqlite.Migrate(context.Background(), db, sqlite.MigrateOptions{}))
	return u
}

// newPostgresDB creates a schema of its own and returns a URL whose
// connections use it (search_path).
func newPostgresDB(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	base := testdb.URL(t, testdb.PostgresEnv)
	admin, err := postgres.Open(ctx, base)
	require.NoError(t, err)
	schema := randomName("wharf_e2e_")
	_, err = admin.ExecContext(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		_ = admin.Close()
		require.NoError(t, err, "drop schema %s", schema)
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db := openWith(t, postgres.Open, u.String())
	require.NoError(t, postgres.Migrate(ctx, db, postgres.MigrateOptions{}))
	return u.String()
}

// newMySQLDB creates a database of its own and returns its URL.
func newMySQLDB(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	base := testdb.URL(t, testdb.MySQLEnv)
	admin, err := mysql.Open(ctx, base)
	require.NoError(t, err)
	name := randomName("wharf_e2e_")
	_, err = admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`")
		_ = admin.Close()
		require.NoError(t, err, "drop database %s", name)
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "/" + name
	db := openWith(t, mysql.Open, u.String())
	require.NoError(t, mysql.Migrate(ctx, db, mysql.MigrateOptions{}))
	return u.String()
}
