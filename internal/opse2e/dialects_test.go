// Package opse2e tests wharf's operations against real databases:
// versioned migrations (adoption of tables created before versioning,
// upgrades with data in the tables, several processes migrating at once,
// refusal of a newer schema, exported migrations applied by plain SQL),
// the idempotency store's admin interface, the outbox's bounded purge and
// the Maintainer under load.
//
// The test binary re-executes itself: TestMain runs a child (child_test.go)
// when WHARF_OPSE2E_MODE is set. Each test runs once per entry of
// dialects.
package opse2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/migrations"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/providers/mysql"
	"github.com/wharf-go/wharf/providers/postgres"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// openFunc opens a driver on a URL: a provider's Open.
type openFunc func(ctx context.Context, url string, opts wharf.Options) (*wharf.Driver, error)

// dialect connects the tests to one database.
type dialect struct {
	// name is the subtest name.
	name string
	// id is wharf's name of the dialect.
	id string
	// newDB creates an empty, isolated database (a file, a database on
	// the server), dropped when the test ends, and returns its URL.
	newDB func(t testing.TB) string
	open  openFunc
}

var dialects = []dialect{
	{name: "SQLite", id: "sqlite", newDB: newSQLiteDB, open: sqlite.Open},
	{name: "PostgreSQL", id: "postgres", newDB: newPostgresDB, open: postgres.Open},
	{name: "MariaDB", id: "mysql", newDB: newMySQLDB, open: mysql.Open},
}

// eachDialect runs fn as a parallel subtest per dialect.
func eachDialect(t *testing.T, fn func(t *testing.T, d dialect)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func dialectByID(id string) (dialect, bool) {
	for _, d := range dialects {
		if d.id == id {
			return d, true
		}
	}
	return dialect{}, false
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// openDriver opens a driver on url with opts, closed when the test ends.
func openDriver(t testing.TB, d dialect, url string, opts wharf.Options) *wharf.Driver {
	t.Helper()
	drv, err := d.open(context.Background(), url, opts)
	require.NoError(t, err, "open the test database")
	t.Cleanup(func() { _ = drv.Close() })
	return drv
}

func newSQLiteDB(t testing.TB) string {
	t.Helper()
	return "file:" + filepath.Join(t.TempDir(), "ops.db")
}

// newPostgresDB creates a database of its own on the server: through
// PgBouncer too (which forwards any database name), and with the version
// table's default, unqualified name isolated.
func newPostgresDB(t testing.TB) string {
	t.Helper()
	return postgresDBOn(t, testdb.URL(t, testdb.PostgresEnv))
}

// postgresDBOn creates a database on the server of base and returns base
// with its path replaced by it.
func postgresDBOn(t testing.TB, base string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := postgres.Open(ctx, testdb.URL(t, testdb.PostgresEnv), wharf.Options{})
	require.NoError(t, err)
	name := randomName("wharf_ops_")
	_, err = admin.DB().ExecContext(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.DB().ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		_ = admin.Close()
		require.NoError(t, err, "drop database %s", name)
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

// newMySQLDB creates a database of its own and returns its URL.
func newMySQLDB(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	base := testdb.URL(t, testdb.MySQLEnv)
	admin, err := mysql.Open(ctx, base, wharf.Options{})
	require.NoError(t, err)
	name := randomName("wharf_ops_")
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
	return u.String()
}

// execScript runs the statements of a SQL text one by one on drv's pool,
// as a plain client would (migrations.Split: each ends with ";" at the end
// of a line).
func execScript(t testing.TB, drv *wharf.Driver, text string) {
	t.Helper()
	ctx := context.Background()
	conn, err := drv.DB().DB.Conn(ctx) // database/sql, not bun; one session for BEGIN and COMMIT
	require.NoError(t, err)
	defer conn.Close()
	for _, s := range migrations.Split(text) {
		_, err := conn.ExecContext(ctx, s)
		require.NoError(t, err, "execute:\n%s", s)
	}
}

// legacyDDL returns the DDL an older wharf's Migrate ran on d (testdata),
// with or without PostgreSQL's fillfactor.
func legacyDDL(t testing.TB, d dialect, fillfactor bool) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "legacy_"+d.id+".sql"))
	require.NoError(t, err)
	tmpl, err := template.New("legacy").Parse(string(b))
	require.NoError(t, err)
	var out strings.Builder
	ff := ""
	if fillfactor {
		ff = " WITH (fillfactor = 70)"
	}
	require.NoError(t, tmpl.Execute(&out, map[string]string{"Fillfactor": ff}))
	return out.String()
}
