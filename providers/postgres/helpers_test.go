package postgres_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

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

// A route is how a test reaches the server: directly, or through PgBouncer
// in transaction pooling mode, which forwards any database name to the
// same server (scripts/testdb.sh starts both).
type route struct {
	name string // the subtest's name
	env  string // the variable that holds the route's URL
}

var (
	direct    = route{name: "Direct", env: testdb.PostgresEnv}
	pgbouncer = route{name: "PgBouncer", env: testdb.PgBouncerEnv}
)

// eachRoute runs test as a parallel subtest per route. Through PgBouncer a
// test skips when WHARF_TEST_PGBOUNCER_URL is unset (fails under CI=true).
func eachRoute(t *testing.T, test func(t *testing.T, r route)) {
	t.Helper()
	for _, r := range []route{direct, pgbouncer} {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			test(t, r)
		})
	}
}

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

// adminDB is a small pool on the server's own database, reached directly,
// for creating and dropping test databases and roles. It lives as long as
// the process.
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

// testDatabase is a database of one test's own.
type testDatabase struct {
	name   string
	server string // its URL on the server directly
	url    string // its URL through the test's route
}

// newDatabase returns an empty database of the test's own, reached
// through r. Isolation by database needs no session state, which a
// transaction-pooling proxy would not keep per client. When the test ends
// the database is emptied in the background and handed to a later test
// (see dbPool).
func newDatabase(t testing.TB, r route) testDatabase {
	t.Helper()
	via := testdb.URL(t, r.env)
	server := baseURL(t)
	name, err := databases.take(adminDB(t))
	require.NoError(t, err)
	t.Cleanup(func() { databases.give(server, name) })
	return testDatabase{name: name, server: withDatabase(t, server, name), url: withDatabase(t, via, name)}
}

// databases is the process's pool of test databases.
var databases dbPool

// dbPool hands out empty test databases: a new one (CREATE DATABASE from
// template0) or one a finished test used, emptied. CREATE DATABASE and
// DROP DATABASE take a few hundred milliseconds together on a busy server,
// which the several hundred tests need not wait for; emptying a database
// takes a few tens. TestMain drops them all WITH (FORCE).
type dbPool struct {
	mu     sync.Mutex
	admin  *sql.DB  // the pool of adminDB
	free   []string // emptied databases
	all    []string // every database made
	resets sync.WaitGroup
	errs   []error // of background resets and drops
}

// take returns the name of an empty database.
func (p *dbPool) take(admin *sql.DB) (string, error) {
	p.mu.Lock()
	p.admin = admin
	if n := len(p.free); n > 0 {
		name := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return name, nil
	}
	p.mu.Unlock()
	name := randomName("wharf_t_")
	if _, err := admin.ExecContext(context.Background(), "CREATE DATABASE "+name+" TEMPLATE template0"); err != nil {
		return "", fmt.Errorf("create a test database: %w", err)
	}
	p.mu.Lock()
	p.all = append(p.all, name)
	p.mu.Unlock()
	return name, nil
}

// give empties name (on the server of URL server) in the background and then makes it available to
// take; a database that cannot be emptied is not reused, and the error
// fails the run (TestMain).
func (p *dbPool) give(server, name string) {
	p.resets.Add(1)
	go func() {
		defer p.resets.Done()
		err := resetDatabase(server, name)
		p.mu.Lock()
		defer p.mu.Unlock()
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("empty test database %s: %w", name, err))
			return
		}
		p.free = append(p.free, name)
	}()
}

// resetDatabase ends every other connection to name (a test's leftovers, PgBouncer's
// server connections, which could hold a LISTEN) and drops every schema,
// then recreates public, usable by every role.
func resetDatabase(server, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u, err := url.Parse(server)
	if err != nil {
		return err
	}
	u.Path = "/" + name
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	const others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) "+others); err != nil {
		return err
	}
	for n := 1; n > 0; {
		if err := conn.QueryRow(ctx, "SELECT count(*) "+others).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			time.Sleep(5 * time.Millisecond) // backends exit at once after pg_terminate_backend
		}
	}
	rows, err := conn.Query(ctx, "SELECT nspname FROM pg_namespace WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%'")
	if err != nil {
		return err
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	for _, s := range schemas {
		b.Queue("DROP SCHEMA " + pgx.Identifier{s}.Sanitize() + " CASCADE")
	}
	b.Queue("CREATE SCHEMA public")
	b.Queue("GRANT USAGE ON SCHEMA public TO PUBLIC")
	return conn.SendBatch(ctx, b).Close()
}

// close waits for the resets and drops every database made, returning the
// errors of both.
func (p *dbPool) close() error {
	p.resets.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := p.errs
	for _, name := range p.all {
		if _, err := p.admin.ExecContext(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("drop test database %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// TestMain drops the test databases before the process ends; a database
// that could not be emptied or dropped fails the run.
func TestMain(m *testing.M) {
	code := m.Run()
	if err := databases.close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// withDatabase returns rawURL with its database replaced by name.
func withDatabase(t testing.TB, rawURL, name string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
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

// routeDriver opens a driver on a fresh database reached through r,
// dropped when the test ends. Through PgBouncer its notifications come over
// a direct connection (Options.Listen.URL), as a deployment behind a
// transaction pooler must set them up.
func routeDriver(t testing.TB, r route, opts wharf.Options) *wharf.Driver {
	t.Helper()
	d := newDatabase(t, r)
	if r == pgbouncer && opts.Listen.URL == "" {
		opts.Listen.URL = d.server
	}
	return openDriver(t, d.url, opts)
}

// routeDB returns the pool of a fresh database reached through r; its
// driver stays open until the test ends.
func routeDB(t testing.TB, r route) *bun.DB {
	t.Helper()
	return routeDriver(t, r, wharf.Options{}).DB()
}

// routeMigrated is routeDriver with the default tables created.
func routeMigrated(t testing.TB, r route) *wharf.Driver {
	t.Helper()
	drv := routeDriver(t, r, wharf.Options{})
	require.NoError(t, drv.Migrate(context.Background()))
	return drv
}

// newTestDriver is routeDriver on the server directly.
func newTestDriver(t testing.TB, opts wharf.Options) *wharf.Driver {
	t.Helper()
	return routeDriver(t, direct, opts)
}

// newTestDB is routeDB on the server directly.
func newTestDB(t testing.TB) *bun.DB {
	t.Helper()
	return routeDB(t, direct)
}

// migratedDriver is routeMigrated on the server directly.
func migratedDriver(t testing.TB) *wharf.Driver {
	t.Helper()
	return routeMigrated(t, direct)
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

// skipUnlessCI skips a test that the server cannot run, loudly; under
// CI=true, whose servers scripts/testdb.sh sets up to run everything, it
// fails instead.
func skipUnlessCI(t *testing.T, why string) {
	t.Helper()
	if testdb.InCI() {
		t.Fatalf("CI=true and %s", why)
	}
	t.Skip(why)
}
