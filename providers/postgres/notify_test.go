package postgres_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/postgres"
)

// Waits of the notification tests: a notification that must arrive gets a
// generous bound; one that must not arrive is given a short window.
const (
	mustArrive  = 10 * time.Second
	mustNotCome = 300 * time.Millisecond
)

func requireWake(t *testing.T, ch <-chan struct{}, why string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		require.True(t, ok, "the notification channel closed while waiting: %s", why)
	case <-time.After(mustArrive):
		require.FailNow(t, "no notification within "+mustArrive.String(), why)
	}
}

func requireQuiet(t *testing.T, ch <-chan struct{}, why string) {
	t.Helper()
	select {
	case <-ch:
		require.FailNow(t, "unexpected notification", why)
	case <-time.After(mustNotCome):
	}
}

func requireClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	deadline := time.After(mustArrive)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			require.FailNow(t, "the notification channel was not closed after ctx ended")
		}
	}
}

func msg(topic string) ports.OutboxMessage {
	return ports.OutboxMessage{Topic: topic, Payload: json.RawMessage(`{}`)}
}

// notifyFixture is a fresh database with an outbox table of a unique name,
// so that its notification channel is the test's alone.
//
// Every driver wakes its own outbox's listeners in this process as soon as
// it commits messages; only PostgreSQL's notifications wake the others. So
// the tests listen on drivers of their own (driver, outbox) and enqueue
// through the producer, a driver on the same table whose commits reach
// them through LISTEN/NOTIFY alone, as another process's would.
type notifyFixture struct {
	ctx      context.Context
	db       *bun.DB // the producer's pool, through the fixture's route
	name     string  // the database's name
	server   string  // its URL on the server directly
	route    route
	table    string
	producer *wharf.Driver
}

// newNotifyFixture is routeNotifyFixture on the server directly.
func newNotifyFixture(t *testing.T) *notifyFixture {
	t.Helper()
	return routeNotifyFixture(t, direct)
}

// routeNotifyFixture makes a fixture whose pool reaches the server through
// r.
func routeNotifyFixture(t *testing.T, r route) *notifyFixture {
	t.Helper()
	table := randomName("nt_")
	d := newDatabase(t, r)
	f := &notifyFixture{ctx: context.Background(), name: d.name, server: d.server, route: r, table: table}
	f.producer = openDriver(t, d.url, f.listenVia(wharf.Options{Outbox: wharf.OutboxOptions{TableName: table}}))
	f.db = f.producer.DB()
	require.NoError(t, f.producer.Migrate(f.ctx))
	return f
}

// listenVia sets Options.Listen.URL to the server itself when the pool goes
// through PgBouncer and opts name no other.
func (f *notifyFixture) listenVia(opts wharf.Options) wharf.Options {
	if f.route == pgbouncer && opts.Listen.URL == "" {
		opts.Listen.URL = f.server
	}
	return opts
}

// driver returns another driver on the fixture's pool and table (listening
// as listenVia says), closed when the test ends.
func (f *notifyFixture) driver(t *testing.T, opts wharf.Options) *wharf.Driver {
	t.Helper()
	opts.Outbox.TableName = f.table
	return newDriver(t, f.db, f.listenVia(opts))
}

// outbox is the outbox of a new driver (see driver).
func (f *notifyFixture) outbox(t *testing.T, opts wharf.Options) wharf.Outbox {
	t.Helper()
	return f.driver(t, opts).Outbox()
}

// enqueue commits a message through the producer.
func (f *notifyFixture) enqueue(t *testing.T) {
	t.Helper()
	_, err := f.producer.Outbox().Enqueue(f.ctx, msg("t"))
	require.NoError(t, err)
}

// listen starts Notifications and stops it when the test ends.
func listen(t *testing.T, ob ports.OutboxNotifier) (<-chan struct{}, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := ob.Notifications(ctx)
	require.NoError(t, err)
	t.Cleanup(func() {
		cancel()
		requireClosed(t, ch)
	})
	return ch, cancel
}

// listenPartly starts Notifications where the database's notifications
// cannot be set up: the error says so (ports.ErrNotificationsUnavailable)
// and the channel, which still carries this process's commits, is
// returned; it is stopped when the test ends.
func listenPartly(t *testing.T, ob ports.OutboxNotifier) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := ob.Notifications(ctx)
	require.ErrorIs(t, err, ports.ErrNotificationsUnavailable)
	require.NotNil(t, ch, "callers keep this process's wake-ups and poll for the rest")
	t.Cleanup(func() {
		cancel()
		requireClosed(t, ch)
	})
	return ch
}

// logRecorder is a slog handler that keeps every record as text and
// reports each one to hook.
type logRecorder struct {
	mu    sync.Mutex
	lines []string
	hook  func(msg string)
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	r.mu.Lock()
	r.lines = append(r.lines, b.String())
	hook := r.hook
	r.mu.Unlock()
	if hook != nil {
		hook(rec.Message)
	}
	return nil
}

func (r *logRecorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

func TestNotifyChannel(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63)
	tests := []struct {
		name, table, want string
	}{
		{"Default", "", "wharf_outbox_outbox_messages"},
		{"Custom", "jobs", "wharf_outbox_jobs"},
		{"SchemaQualified", "app.jobs", "wharf_outbox_app.jobs"},
		{"KeepsCase", "Jobs", "wharf_outbox_Jobs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, postgres.NotifyChannel(tt.table))
		})
	}
	t.Run("LongNamesAreBoundedAndDistinct", func(t *testing.T) {
		t.Parallel()
		a, b := postgres.NotifyChannel(long), postgres.NotifyChannel(long[:len(long)-1]+"c")
		require.Len(t, a, 63)
		require.Len(t, b, 63)
		require.NotEqual(t, a, b)
		require.True(t, strings.HasPrefix(a, "wharf_outbox_aaaa"))
	})
}

// TestNotificationsFollowCommits: the producer's commits reach another
// driver's listener through PostgreSQL, whichever way they were made; a
// rollback, or a transaction not yet committed, notifies nobody. Through
// PgBouncer the producer's pool goes through the proxy and the listener
// reaches the server directly (Options.Listen.URL).
func TestNotificationsFollowCommits(t *testing.T) {
	t.Parallel()
	eachRoute(t, testNotificationsFollowCommits)
}

func testNotificationsFollowCommits(t *testing.T, r route) {
	f := routeNotifyFixture(t, r)
	listener := f.outbox(t, wharf.Options{})
	ch, _ := listen(t, listener)

	tx, err := f.db.BeginTx(f.ctx, nil)
	require.NoError(t, err)
	_, err = f.producer.Bind(tx).Outbox.Enqueue(f.ctx, msg("t"))
	require.NoError(t, err)
	require.NoError(t, tx.Rollback())
	requireQuiet(t, ch, "the enqueueing transaction rolled back")

	tx, err = f.db.BeginTx(f.ctx, nil)
	require.NoError(t, err)
	_, err = f.producer.Bind(tx).Outbox.Enqueue(f.ctx, msg("t"))
	require.NoError(t, err)
	requireQuiet(t, ch, "the enqueueing transaction has not committed yet")
	require.NoError(t, tx.Commit())
	requireWake(t, ch, "a committed Enqueue notifies")

	uow, err := wharf.NewUnitOfWork(f.producer, func(tx wharf.Tx) (wharf.Outbox, error) {
		return tx.Outbox, nil
	}, wharf.UnitOfWorkOptions{})
	require.NoError(t, err)
	require.NoError(t, uow.Transaction(f.ctx, func(ctx context.Context, o wharf.Outbox) error {
		_, err := o.Enqueue(ctx, msg("t"), msg("u"))
		return err
	}))
	requireWake(t, ch, "an Enqueue committed by the unit of work notifies")

	f.enqueue(t)
	requireWake(t, ch, "an Enqueue on the pool commits and notifies")

	_, err = listener.Enqueue(f.ctx, msg("t"))
	require.NoError(t, err)
	requireWake(t, ch, "the listening driver's own Enqueue wakes it too")
}

// TestEnqueueSendsOneNotificationPerCall listens on the channel itself and
// checks the notifications that Enqueue sends: one per call, whatever the
// number of messages, with the call's distinct topics as payload.
func TestEnqueueSendsOneNotificationPerCall(t *testing.T) {
	t.Parallel()
	eachRoute(t, testEnqueueSendsOneNotificationPerCall)
}

func testEnqueueSendsOneNotificationPerCall(t *testing.T, r route) {
	f := routeNotifyFixture(t, r)
	ob := f.producer.Outbox()
	channel := postgres.NotifyChannel(f.table)
	conn, err := pgx.Connect(f.ctx, f.server)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	_, err = conn.Exec(f.ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize())
	require.NoError(t, err)

	// collect returns the payloads received before the marker.
	collect := func() []string {
		t.Helper()
		_, err := f.db.ExecContext(f.ctx, "SELECT pg_notify(?, 'marker')", channel)
		require.NoError(t, err)
		var got []string
		ctx, cancel := context.WithTimeout(f.ctx, mustArrive)
		defer cancel()
		for {
			n, err := conn.WaitForNotification(ctx)
			require.NoError(t, err)
			if n.Payload == "marker" {
				return got
			}
			got = append(got, n.Payload)
		}
	}

	_, err = ob.Enqueue(f.ctx, msg("a"), msg("b"), msg("a"))
	require.NoError(t, err)
	require.Equal(t, []string{"a\nb"}, collect(), "one notification per Enqueue call")

	many := make([]ports.OutboxMessage, 1200)
	for i := range many {
		many[i] = msg("bulk")
	}
	_, err = ob.Enqueue(f.ctx, many...)
	require.NoError(t, err)
	require.Equal(t, []string{"bulk"}, collect(), "one notification however many messages")

	tx, err := f.db.BeginTx(f.ctx, nil)
	require.NoError(t, err)
	for range 3 {
		_, err = f.producer.Bind(tx).Outbox.Enqueue(f.ctx, msg("same"))
		require.NoError(t, err)
	}
	_, err = f.producer.Bind(tx).Outbox.Enqueue(f.ctx, msg("other"))
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
	require.Equal(t, []string{"same", "other"}, collect(),
		"PostgreSQL folds identical notifications of one transaction into one")
}

func backendPID(t *testing.T, db *bun.DB, appName string, not int) int {
	t.Helper()
	var pids []int
	require.NoError(t, db.NewRaw("SELECT pid FROM pg_stat_activity WHERE application_name = ? AND pid <> ?", appName, not).
		Scan(context.Background(), &pids))
	require.Len(t, pids, 1, "one listener backend named %s", appName)
	return pids[0]
}

// terminate kills the backend pid and waits until it has left
// pg_stat_activity (it exits after pg_terminate_backend returns), so that
// the tests' counts of listener connections see only live ones.
func terminate(t *testing.T, db *bun.DB, pid int) {
	t.Helper()
	var ok bool
	require.NoError(t, db.NewRaw("SELECT pg_terminate_backend(?)", pid).Scan(context.Background(), &ok))
	require.True(t, ok, "pg_terminate_backend(%d)", pid)
	require.Eventually(t, func() bool {
		var n int
		err := db.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE pid = ?", pid).Scan(context.Background(), &n)
		return err == nil && n == 0
	}, mustArrive, 5*time.Millisecond, "backend %d exits", pid)
}

func TestNotificationsReconnectAfterTheServerKillsTheConnection(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	logs := &logRecorder{}
	appName := randomName("wharf_listen_")
	ob := f.outbox(t, wharf.Options{Logger: slog.New(logs), Listen: wharf.ListenOptions{ApplicationName: appName}})
	ch, _ := listen(t, ob)

	pid := backendPID(t, f.db, appName, 0)
	terminate(t, f.db, pid)
	requireWake(t, ch, "a wake-up after reconnecting, since notifications may have been missed")
	newPID := backendPID(t, f.db, appName, pid)
	require.NotEqual(t, pid, newPID)

	f.enqueue(t)
	requireWake(t, ch, "notifications still arrive on the new connection")
	require.Contains(t, logs.text(), "outbox listener lost its connection; reconnecting")
	require.Contains(t, logs.text(), "outbox listener reconnected")

	// And again: every loss is recovered.
	terminate(t, f.db, newPID)
	requireWake(t, ch, "a wake-up after the second reconnection")
	f.enqueue(t)
	requireWake(t, ch, "notifications arrive after the second reconnection")
}

// TestNotificationsRetryWithBackoffAndNeverLogThePassword listens as a role
// of its own with a recognisable password, forbids that role to log in and
// kills the listener's connection: the listener must keep retrying (after
// growing pauses, from 100 ms, and logging without the password) until the
// role may log in again.
func TestNotificationsRetryWithBackoffAndNeverLogThePassword(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	admin := adminDB(t)
	role, password := randomName("wharf_role_"), secret+randomName("_")
	if _, err := admin.ExecContext(f.ctx, "CREATE ROLE "+role+" LOGIN PASSWORD '"+password+"'"); err != nil {
		skipUnlessCI(t, fmt.Sprintf("cannot create a role on this server (needs CREATEROLE): %v", err))
	}
	t.Cleanup(func() { _, _ = admin.ExecContext(context.Background(), "DROP ROLE "+role) })
	u, err := url.Parse(f.server)
	require.NoError(t, err)
	u.User = url.UserPassword(role, password)

	failed := make(chan struct{})
	var once sync.Once
	logs := &logRecorder{hook: func(m string) {
		if strings.Contains(m, "cannot reconnect") {
			once.Do(func() { close(failed) })
		}
	}}
	appName := randomName("wharf_listen_")
	ob := f.outbox(t, wharf.Options{Logger: slog.New(logs), Listen: wharf.ListenOptions{
		URL: u.String(), ApplicationName: appName,
	}})
	ch, cancel := listen(t, ob)

	_, err = admin.ExecContext(f.ctx, "ALTER ROLE "+role+" NOLOGIN")
	require.NoError(t, err)
	terminate(t, f.db, backendPID(t, f.db, appName, 0))
	select {
	case <-failed:
	case <-time.After(mustArrive):
		require.FailNow(t, "the listener never reported a failed reconnection")
	}
	_, err = admin.ExecContext(f.ctx, "ALTER ROLE "+role+" LOGIN")
	require.NoError(t, err)
	requireWake(t, ch, "a wake-up once the listener got back in")
	f.enqueue(t)
	requireWake(t, ch, "notifications arrive after the reconnection")

	cancel()
	requireClosed(t, ch)
	text := logs.text()
	require.Contains(t, text, "not permitted to log in", "the server's refusal is logged")
	require.Contains(t, text, "retry_in=")
	require.NotContains(t, text, password, "the password must never be logged")
}

// TestListenerLeavesThePoolConnectionAlone derives the listener's settings
// from a pool of one connection and checks that the notifications it
// receives are not queued on that pool connection (pgx keeps a connection's
// notification hook in the configuration that Config copies).
func TestListenerLeavesThePoolConnectionAlone(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	f.db.SetMaxOpenConns(1)
	ob := f.outbox(t, wharf.Options{})
	ch, _ := listen(t, ob)
	for range 3 {
		f.enqueue(t) // on the pool's one connection
		requireWake(t, ch, "a committed Enqueue notifies")
	}
	conn, err := f.db.DB.Conn(f.ctx)
	require.NoError(t, err)
	defer conn.Close()
	done, cancel := context.WithCancel(f.ctx)
	cancel()
	require.NoError(t, conn.Raw(func(dc any) error {
		n, err := dc.(*stdlib.Conn).Conn().WaitForNotification(done)
		require.Nil(t, n, "the pool connection has no queued notifications")
		require.Error(t, err)
		return nil
	}))
}

func TestNotificationsChannelClosesWhenContextEnds(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	ob := f.outbox(t, wharf.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := ob.Notifications(ctx)
	require.NoError(t, err)
	cancel()
	requireClosed(t, ch)
}

// TestNotificationsSurviveFrequentPings makes the listener ping its
// connection every few milliseconds of silence; notifications arriving
// around the pings must all get through, and no ping may break the
// connection.
func TestNotificationsSurviveFrequentPings(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	logs := &logRecorder{}
	ob := f.outbox(t, wharf.Options{Logger: slog.New(logs), Listen: wharf.ListenOptions{PingInterval: 2 * time.Millisecond}})
	ch, _ := listen(t, ob)
	for i := range 20 {
		f.enqueue(t)
		requireWake(t, ch, fmt.Sprintf("notification %d", i))
	}
	require.NotContains(t, logs.text(), "lost its connection")
}

// TestNotificationsOfABoundOutboxOrAForeignPool: an outbox bound to a
// transaction listens with its driver's pool settings; a pool whose
// connections are not pgx's (an application's wrapper around the driver)
// has no settings to copy, so the listener needs Listen.URL, and without it
// the outbox wakes this process's relays only.
func TestNotificationsOfABoundOutboxOrAForeignPool(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	tx, err := f.db.BeginTx(f.ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()

	t.Run("BoundOutboxKeepsThePoolSettings", func(t *testing.T) {
		bound := f.driver(t, wharf.Options{}).Bind(tx).Outbox
		ch, _ := listen(t, bound)
		f.enqueue(t)
		requireWake(t, ch, "the bound outbox listens like the driver's own")
	})
	t.Run("ForeignPoolNeedsAURL", func(t *testing.T) {
		logs := &logRecorder{}
		drv := newDriver(t, foreignPool(t, f.db), wharf.Options{Outbox: wharf.OutboxOptions{TableName: f.table}, Logger: slog.New(logs)})
		ch := listenPartly(t, drv.Outbox())
		text := logs.text()
		require.Contains(t, text, "notifications from other processes unavailable")
		require.Contains(t, text, "Listen.URL", "the warning says what to set")
		require.Contains(t, text, ports.ErrInvalidArgument.Error())
		f.enqueue(t)
		requireQuiet(t, ch, "no LISTEN connection: other drivers' commits are not signalled")
		_, err := drv.Outbox().Enqueue(f.ctx, msg("t"))
		require.NoError(t, err)
		requireWake(t, ch, "the driver's own commit wakes it")
	})
	t.Run("ForeignPoolWithAURL", func(t *testing.T) {
		drv := newDriver(t, foreignPool(t, f.db), wharf.Options{Outbox: wharf.OutboxOptions{TableName: f.table}, Listen: wharf.ListenOptions{URL: f.server}})
		ch, _ := listen(t, drv.Bind(tx).Outbox)
		f.enqueue(t)
		requireWake(t, ch, "the explicit URL reaches the same database")
	})
}

// foreignPool returns a PostgreSQL pool on the server of db whose
// connections wrap pgx's, as an application's instrumentation might:
// database/sql works through them, but they are not *stdlib.Conn.
func foreignPool(t *testing.T, db *bun.DB) *bun.DB {
	t.Helper()
	conn, err := db.DB.Conn(context.Background())
	require.NoError(t, err)
	var cfg *pgx.ConnConfig
	require.NoError(t, conn.Raw(func(dc any) error {
		cfg = dc.(*stdlib.Conn).Conn().Config()
		cfg.OnNotification = nil
		return nil
	}))
	require.NoError(t, conn.Close())
	sqldb := sql.OpenDB(foreignConnector{stdlib.GetConnector(*cfg)})
	sqldb.SetMaxOpenConns(2)
	t.Cleanup(func() { _ = sqldb.Close() })
	return bun.NewDB(sqldb, pgdialect.New())
}

type foreignConnector struct{ driver.Connector }

func (c foreignConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return foreignConn{conn}, nil
}

type foreignConn struct{ driver.Conn }

// TestNotificationsUnavailable: when the notification connection cannot be
// set up, Notifications logs why (naming the server, never the password)
// and returns a channel that this process's commits still wake; relays poll
// for the rest.
func TestNotificationsUnavailable(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	hostPort := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	t.Run("UnreachableServer", func(t *testing.T) {
		t.Parallel()
		logs := &logRecorder{}
		ob := f.outbox(t, wharf.Options{Logger: slog.New(logs), Listen: wharf.ListenOptions{URL: "postgres://app:" + secret + "@" + hostPort + "/app?sslmode=disable"}})
		ch := listenPartly(t, ob)
		text := logs.text()
		require.Contains(t, text, "notifications from other processes unavailable")
		require.Contains(t, text, hostPort)
		require.NotContains(t, text, secret)
		_, err := ob.Enqueue(f.ctx, msg("t"))
		require.NoError(t, err)
		requireWake(t, ch, "this process's commit wakes the channel")
	})
	t.Run("MalformedURLIsRefusedByTheDriver", func(t *testing.T) {
		t.Parallel()
		_, err := wharf.NewDriver(f.db, wharf.Options{Outbox: wharf.OutboxOptions{TableName: f.table},
			Listen: wharf.ListenOptions{URL: "postgres://app:" + secret + "@db.internal:5x32/app"}})
		require.ErrorIs(t, err, ports.ErrInvalidArgument)
		require.Contains(t, err.Error(), "Options.Listen.URL")
		require.Contains(t, err.Error(), "db.internal")
		require.NotContains(t, err.Error(), secret)
	})
}

// listenerBackends counts the server connections named appName.
func listenerBackends(t *testing.T, db *bun.DB, appName string) int {
	t.Helper()
	var n int
	require.NoError(t, db.NewRaw("SELECT count(*) FROM pg_stat_activity WHERE application_name = ?", appName).
		Scan(context.Background(), &n))
	return n
}

// TestNotificationsShareOneConnection subscribes several times to one
// driver's outbox and to its outbox bound to a transaction: one LISTEN
// connection serves them all, every channel is woken, a cancelled channel
// leaves the others working and a reconnection wakes every channel.
func TestNotificationsShareOneConnection(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	appName := randomName("wharf_listen_")
	drv := f.driver(t, wharf.Options{Listen: wharf.ListenOptions{ApplicationName: appName}})
	ob := drv.Outbox()
	tx, err := f.db.BeginTx(f.ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()

	ctxA, cancelA := context.WithCancel(f.ctx)
	defer cancelA()
	a, err := ob.Notifications(ctxA)
	require.NoError(t, err)
	b, cancelB := listen(t, ob)
	c, _ := listen(t, drv.Bind(tx).Outbox)
	require.Equal(t, 1, listenerBackends(t, f.db, appName), "one connection for three channels")

	f.enqueue(t)
	for name, ch := range map[string]<-chan struct{}{"a": a, "b": b, "c": c} {
		requireWake(t, ch, "channel "+name+" is woken")
	}

	cancelA()
	requireClosed(t, a)
	f.enqueue(t)
	requireWake(t, b, "the other channels keep working")
	requireWake(t, c, "the other channels keep working")
	require.Equal(t, 1, listenerBackends(t, f.db, appName))

	terminate(t, f.db, backendPID(t, f.db, appName, 0))
	requireWake(t, b, "every channel is woken after the reconnection")
	requireWake(t, c, "every channel is woken after the reconnection")
	f.enqueue(t)
	requireWake(t, b, "notifications arrive on the new connection")
	requireWake(t, c, "notifications arrive on the new connection")
	require.Equal(t, 1, listenerBackends(t, f.db, appName))

	cancelB()
	requireClosed(t, b)
	f.enqueue(t)
	requireWake(t, c, "the last channel keeps the connection")
	require.Equal(t, 1, listenerBackends(t, f.db, appName))
}

// TestNotificationsConnectionClosesWithTheLastChannel checks that the shared
// connection ends when its last channel does, and that a later call opens a
// new one.
func TestNotificationsConnectionClosesWithTheLastChannel(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	appName := randomName("wharf_listen_")
	ob := f.outbox(t, wharf.Options{Listen: wharf.ListenOptions{ApplicationName: appName}})
	for round := range 2 {
		ctx1, cancel1 := context.WithCancel(f.ctx)
		ctx2, cancel2 := context.WithCancel(f.ctx)
		ch1, err := ob.Notifications(ctx1)
		require.NoError(t, err)
		ch2, err := ob.Notifications(ctx2)
		require.NoError(t, err)
		require.Equal(t, 1, listenerBackends(t, f.db, appName), "round %d: one connection", round)
		f.enqueue(t)
		requireWake(t, ch1, "first channel")
		requireWake(t, ch2, "second channel")
		cancel1()
		requireClosed(t, ch1)
		cancel2()
		requireClosed(t, ch2)
		require.Eventually(t, func() bool { return listenerBackends(t, f.db, appName) == 0 }, mustArrive, 10*time.Millisecond,
			"round %d: the connection closes with the last channel", round)
	}
}

// TestCloseEndsTheListener: closing the driver closes its LISTEN
// connection at once, while channels stay open until their context ends.
func TestCloseEndsTheListener(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	appName := randomName("wharf_listen_")
	drv, err := wharf.NewDriver(f.db, wharf.Options{Outbox: wharf.OutboxOptions{TableName: f.table}, Listen: wharf.ListenOptions{ApplicationName: appName}})
	require.NoError(t, err)
	ch, _ := listen(t, drv.Outbox())
	require.Equal(t, 1, listenerBackends(t, f.db, appName))
	require.NoError(t, drv.Close())
	require.Eventually(t, func() bool { return listenerBackends(t, f.db, appName) == 0 }, mustArrive, 10*time.Millisecond,
		"Close ends the LISTEN connection")
	require.NoError(t, f.db.PingContext(f.ctx), "Close leaves a pool it did not open alone")
	f.enqueue(t)
	requireQuiet(t, ch, "nothing listens any more")
}

// TestNotificationsArriveOnceTheServerIsReachable: when the notification
// connection cannot be opened at first (the server is not reachable yet),
// the channel carries this process's commits, and the outbox keeps trying
// in the background: once the server is reachable, another process's
// commits wake the channel too.
func TestNotificationsArriveOnceTheServerIsReachable(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	server, err := url.Parse(f.server)
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
	listenURL := *server
	listenURL.Host = addr
	ob := f.outbox(t, wharf.Options{Listen: wharf.ListenOptions{URL: listenURL.String()}})
	ch := listenPartly(t, ob)

	forward(t, addr, server.Host) // the server becomes reachable at addr
	other := f.outbox(t, wharf.Options{})
	deadline := time.Now().Add(mustArrive + 30*time.Second) // the first retry comes after a second
	for {
		_, err := other.Enqueue(f.ctx, msg("t"))
		require.NoError(t, err)
		select {
		case _, ok := <-ch:
			require.True(t, ok, "the channel stays open")
			return
		case <-time.After(200 * time.Millisecond):
		}
		require.True(t, time.Now().Before(deadline), "another process's commit never woke the channel after the server became reachable")
	}
}

// forward accepts connections on addr and pipes each to target until the
// test ends.
func forward(t *testing.T, addr, target string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
			go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
}
