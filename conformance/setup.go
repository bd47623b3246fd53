package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

// testCase is one named test of a group.
type testCase struct {
	name string
	run  func(t *testing.T, h Harness)
}

// runGroup runs every test of a group as a parallel subtest. Each test sets
// up its own database, so they are isolated.
func runGroup(t *testing.T, h Harness, tests []testCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, h)
		})
	}
}

// clockStart is where every fake clock starts: a fixed instant with a
// microsecond fraction, far from the real time.
var clockStart = time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)

// fakeClock is a manually advanced clock, safe for concurrent use.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: clockStart} }

// Now returns the clock's current time.
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// testLease is the lease used by claims in the outbox tests.
const testLease = time.Minute

// fixture is one test's world: a fresh migrated database and a fake clock.
type fixture struct {
	t     *testing.T
	h     Harness
	ctx   context.Context
	db    *bun.DB
	clock *fakeClock
}

// setup creates a fresh database, migrates it with the default table names
// and starts a fake clock.
func setup(t *testing.T, h Harness) *fixture {
	t.Helper()
	ctx := t.Context()
	db := h.NewDB(t)
	require.NotNil(t, db, "Harness.NewDB returned a nil *bun.DB")
	f := &fixture{t: t, h: h, ctx: ctx, db: db, clock: newFakeClock()}
	require.NoError(t, f.driver(config{}).Migrate(ctx), "Migrate with the default table names")
	return f
}

// config is what a test varies in a driver's options; the zero value means
// the defaults and the fixture's fake clock.
type config struct {
	outboxTable, idemTable string
	// now is the clock; nil means the fixture's fake clock.
	now                func() time.Time
	defaultMaxAttempts int
	ttl, lease         time.Duration
	// eventKey is Options.EventKey.
	eventKey func(ports.Event) string
}

// options turns c into driver options.
func (f *fixture) options(c config) wharf.Options {
	if c.now == nil {
		c.now = f.clock.Now
	}
	return wharf.Options{
		Outbox:      wharf.OutboxOptions{TableName: c.outboxTable, DefaultMaxAttempts: c.defaultMaxAttempts},
		Idempotency: wharf.IdempotencyOptions{TableName: c.idemTable, TTL: c.ttl, Lease: c.lease},
		Now:         c.now,
		EventKey:    c.eventKey,
	}
}

// newDriver returns the harness's driver on the fixture's database, or its
// error; a driver is closed when the test ends.
func (f *fixture) newDriver(c config) (*wharf.Driver, error) {
	drv, err := f.h.NewDriver(f.db, f.options(c))
	if err == nil {
		f.t.Cleanup(func() { _ = drv.Close() })
	}
	return drv, err
}

// driver is newDriver that fails the test on an error.
func (f *fixture) driver(c config) *wharf.Driver {
	f.t.Helper()
	drv, err := f.newDriver(c)
	require.NoError(f.t, err, "Harness.NewDriver")
	require.NotNil(f.t, drv, "Harness.NewDriver returned a nil driver")
	return drv
}

// outbox builds an outbox on db (the root or a transaction) with the fake
// clock.
func (f *fixture) outbox(db bun.IDB) wharf.Outbox {
	f.t.Helper()
	return f.outboxWith(db, config{})
}

// outboxWith builds an outbox on db with c.
func (f *fixture) outboxWith(db bun.IDB, c config) wharf.Outbox {
	f.t.Helper()
	drv := f.driver(c)
	if db == bun.IDB(f.db) {
		return drv.Outbox()
	}
	return drv.Bind(db).Outbox
}

// idemConfig is the idempotency configuration of the tests: the fake clock
// and explicit defaults.
func (f *fixture) idemConfig() config {
	return config{lease: time.Minute, ttl: 24 * time.Hour}
}

// idempotency builds an idempotency store on db with the fake clock.
func (f *fixture) idempotency(db bun.IDB) ports.Idempotency {
	f.t.Helper()
	return f.idempotencyWith(db, f.idemConfig())
}

func (f *fixture) idempotencyWith(db bun.IDB, c config) ports.Idempotency {
	f.t.Helper()
	drv := f.driver(c)
	if db == bun.IDB(f.db) {
		return drv.Idempotency()
	}
	return drv.Bind(db).Idempotency
}

// txPorts are the suite's transaction-scoped ports.
type txPorts struct {
	// DB is the transaction handle.
	DB bun.IDB
	// Events is the unit of work's after-commit recorder (Tx.AfterCommit).
	Events ports.EventRecorder
	// Outbox and Idempotency are bound to the transaction.
	Outbox      wharf.Outbox
	Idempotency ports.Idempotency
}

// uowConfig configures a unit of work of the tests.
type uowConfig struct {
	// driver is the driver's configuration (clock, tables).
	driver      config
	eventBus    ports.EventBus
	maxAttempts int
}

// unitOfWork builds a unit of work on the fixture's database. The returned
// counter counts the calls of the build function (one per transaction).
func (f *fixture) unitOfWork(c uowConfig) (ports.UnitOfWork[txPorts], *atomic.Int64) {
	f.t.Helper()
	builds := new(atomic.Int64)
	uow, err := wharf.NewUnitOfWork(f.driver(c.driver), func(tx wharf.Tx) (txPorts, error) {
		builds.Add(1)
		return txPorts{DB: tx.DB, Events: tx.AfterCommit, Outbox: tx.Outbox, Idempotency: tx.Idempotency}, nil
	}, wharf.UnitOfWorkOptions{EventBus: c.eventBus, MaxAttempts: c.maxAttempts})
	require.NoError(f.t, err, "wharf.NewUnitOfWork")
	return uow, builds
}

// createItems creates the business table of the unit-of-work tests.
func (f *fixture) createItems() {
	f.t.Helper()
	_, err := f.db.ExecContext(f.ctx, "CREATE TABLE conf_items (id VARCHAR(64) PRIMARY KEY, name VARCHAR(255) NOT NULL)")
	require.NoError(f.t, err, "create conf_items")
}

// insertItem inserts a business row through db (the root or a transaction).
func insertItem(ctx context.Context, db bun.IDB, id, name string) error {
	if _, err := db.ExecContext(ctx, "INSERT INTO conf_items (id, name) VALUES (?, ?)", id, name); err != nil {
		return fmt.Errorf("insert conf_items %q: %w", id, err)
	}
	return nil
}

// countItems counts business rows through db.
func countItems(ctx context.Context, db bun.IDB) (int, error) {
	var n int
	if err := db.NewRaw("SELECT COUNT(*) FROM conf_items").Scan(ctx, &n); err != nil {
		return 0, fmt.Errorf("count conf_items: %w", err)
	}
	return n, nil
}

// items returns the committed business row IDs, sorted.
func (f *fixture) items() []string {
	f.t.Helper()
	rows, err := f.db.QueryContext(f.ctx, "SELECT id FROM conf_items")
	require.NoError(f.t, err)
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		require.NoError(f.t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(f.t, rows.Err())
	sort.Strings(ids)
	return ids
}

// countRows counts the rows of a table on the root database.
func (f *fixture) countRows(table string) int {
	f.t.Helper()
	var n int
	require.NoError(f.t, f.db.NewRaw("SELECT COUNT(*) FROM "+table).Scan(f.ctx, &n), "count %s", table)
	return n
}

// recordingBus is an EventBus that records what it receives. check, when
// set, runs before the events are recorded; err, when set, is returned.
type recordingBus struct {
	mu     sync.Mutex
	calls  int
	events []ports.Event
	check  func(ctx context.Context, events []ports.Event) error
	err    error
}

func (b *recordingBus) Publish(ctx context.Context, events ...ports.Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if b.check != nil {
		if err := b.check(ctx, events); err != nil {
			return err
		}
	}
	b.events = append(b.events, events...)
	return b.err
}

func (b *recordingBus) snapshot() (calls int, events []ports.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls, append([]ports.Event(nil), b.events...)
}

// raw returns a JSON payload.
func raw(s string) json.RawMessage { return json.RawMessage(s) }

// job returns a valid message on topic.
func job(topic string) ports.OutboxMessage {
	return ports.OutboxMessage{Kind: ports.KindJob, Topic: topic, Payload: raw(`{"n":1}`)}
}

// keyed returns a valid message on topic with ordering key key.
func keyed(topic, key string) ports.OutboxMessage {
	m := job(topic)
	m.Key = key
	return m
}

func (f *fixture) enqueue(ob ports.Outbox, msgs ...ports.OutboxMessage) []string {
	f.t.Helper()
	ids, err := ob.Enqueue(f.ctx, msgs...)
	require.NoError(f.t, err, "Enqueue")
	require.Len(f.t, ids, len(msgs), "Enqueue returns one ID per message")
	return ids
}

func (f *fixture) claim(ob ports.Outbox, limit int, topics ...string) []ports.ClaimedMessage {
	f.t.Helper()
	msgs, err := ob.Claim(f.ctx, ports.ClaimOptions{Limit: limit, Lease: testLease, Topics: topics})
	require.NoError(f.t, err, "Claim")
	return msgs
}

// claimOne claims exactly one message.
func (f *fixture) claimOne(ob ports.Outbox, topics ...string) ports.ClaimedMessage {
	f.t.Helper()
	msgs := f.claim(ob, 1, topics...)
	require.Len(f.t, msgs, 1, "Claim should hand out one message")
	return msgs[0]
}

// claimNone asserts that nothing is claimable.
func (f *fixture) claimNone(ob ports.Outbox, why string, topics ...string) {
	f.t.Helper()
	msgs := f.claim(ob, 100, topics...)
	require.Empty(f.t, claimedIDs(msgs), "nothing should be claimable: %s", why)
}

func claimedIDs(msgs []ports.ClaimedMessage) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func recordIDs(recs []ports.OutboxRecord) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = r.ID
	}
	return ids
}

func (f *fixture) list(ob wharf.Outbox, filter ports.OutboxFilter) []ports.OutboxRecord {
	f.t.Helper()
	recs, err := ob.List(f.ctx, filter)
	require.NoError(f.t, err, "List")
	return recs
}

// listAll lists every stored message.
func (f *fixture) listAll(ob wharf.Outbox) []ports.OutboxRecord {
	f.t.Helper()
	return f.list(ob, ports.OutboxFilter{Limit: 1000})
}

// record returns the stored message with this ID.
func (f *fixture) record(ob wharf.Outbox, id string) ports.OutboxRecord {
	f.t.Helper()
	for _, r := range f.listAll(ob) {
		if r.ID == id {
			return r
		}
	}
	require.FailNow(f.t, "message not in the outbox", "List does not return message %s", id)
	return ports.OutboxRecord{}
}

func (f *fixture) stats(ob wharf.Outbox) ports.OutboxStats {
	f.t.Helper()
	st, err := ob.Stats(f.ctx)
	require.NoError(f.t, err, "Stats")
	return st
}

// requireTime asserts that got is the same instant as want.
func requireTime(t testing.TB, want, got time.Time, msgAndArgs ...any) {
	t.Helper()
	if !want.Equal(got) {
		require.FailNow(t, fmt.Sprintf("times differ: want %s, got %s", want.UTC().Format(time.RFC3339Nano), got.UTC().Format(time.RFC3339Nano)), msgAndArgs...)
	}
}

// requireClaimLost asserts that err reports lost claims of exactly ids.
func requireClaimLost(t testing.TB, err error, op string, ids ...string) {
	t.Helper()
	require.Error(t, err, "%s with a lost claim should fail", op)
	require.ErrorIs(t, err, ports.ErrClaimLost)
	var cle *ports.ClaimLostError
	require.ErrorAs(t, err, &cle, "%s should report a *ports.ClaimLostError", op)
	require.Equal(t, op, cle.Op)
	require.ElementsMatch(t, ids, cle.IDs, "the ClaimLostError should name exactly the lost claims")
}

// requireMutationError asserts that err is an *IdempotencyMutationError for
// action on r's key.
func requireMutationError(t testing.TB, err error, action string, r ports.Reservation) {
	t.Helper()
	require.Error(t, err, "%s of a reservation that is not held should fail", action)
	require.ErrorIs(t, err, ports.ErrIdempotencyMutation)
	var me *ports.IdempotencyMutationError
	require.ErrorAs(t, err, &me, "the error should be a *ports.IdempotencyMutationError")
	require.Equal(t, action, me.Action)
	require.Equal(t, r.Namespace, me.Namespace)
	require.Equal(t, r.Key, me.Key)
	require.Equal(t, r.ScopeKey, me.ScopeKey)
}

// errorList collects errors from goroutines.
type errorList struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorList) add(err error) {
	if err == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorList) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.errs...)
}
