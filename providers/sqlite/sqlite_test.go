package sqlite_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/sqlite"
)

func TestDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		url        string
		wantMemory bool
		want       []string // query values that must be present
		notWant    []string
	}{
		{name: "AddsDefaultsToAFilePath", url: "file:app.db",
			want: []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "_txlock=immediate"}},
		{name: "KeepsTheUsersBusyTimeout", url: "file:app.db?_pragma=busy_timeout(50)",
			want: []string{"busy_timeout(50)", "journal_mode(WAL)"}, notWant: []string{"busy_timeout(10000)"}},
		{name: "KeepsTheUsersJournalModeAndTxlock", url: "file:/tmp/x.db?_pragma=journal_mode(DELETE)&_txlock=deferred",
			want: []string{"journal_mode(DELETE)", "_txlock=deferred"}, notWant: []string{"journal_mode(WAL)", "_txlock=immediate"}},
		{name: "MemoryHasNoWAL", url: ":memory:", wantMemory: true,
			want: []string{"busy_timeout(10000)", "_txlock=immediate"}, notWant: []string{"journal_mode(WAL)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn, memory, err := sqlite.DSN(tt.url)
			require.NoError(t, err)
			require.Equal(t, tt.wantMemory, memory)
			decoded, err := url.QueryUnescape(dsn)
			require.NoError(t, err)
			for _, w := range tt.want {
				require.Contains(t, decoded, w)
			}
			for _, w := range tt.notWant {
				require.NotContains(t, decoded, w)
			}
		})
	}
}

func TestDSNRejectsMalformedURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"", "app.db", "postgres://u:p@h/db", "file:", "file:x.db?%zz"} {
		_, _, err := sqlite.DSN(u)
		require.Error(t, err, u)
		require.ErrorIs(t, err, ports.ErrInvalidArgument, u)
	}
}

func TestProviderBoot(t *testing.T) {
	t.Run("MissingVariableNamesIt", func(t *testing.T) {
		t.Setenv(sqlite.EnvVar, "")
		app := core.NewApp(core.AppOptions{})
		require.NoError(t, app.Register(sqlite.NewProvider(wharf.ProviderOptions{})))
		err := app.Start(context.Background())
		require.ErrorContains(t, err, "SQLITE_DB_URL is not set")
		require.ErrorIs(t, err, ports.ErrInvalidArgument)
	})
	t.Run("MalformedVariableNamesIt", func(t *testing.T) {
		t.Setenv(sqlite.EnvVar, "app.db")
		app := core.NewApp(core.AppOptions{})
		require.NoError(t, app.Register(sqlite.NewProvider(wharf.ProviderOptions{})))
		err := app.Start(context.Background())
		require.ErrorContains(t, err, "SQLITE_DB_URL")
		require.ErrorIs(t, err, ports.ErrInvalidArgument)
	})
	t.Run("OtherDialectsURLNamesItAndAsksForAFile", func(t *testing.T) {
		t.Setenv(sqlite.EnvVar, "mysql://nope")
		app := core.NewApp(core.AppOptions{})
		require.NoError(t, app.Register(sqlite.NewProvider(wharf.ProviderOptions{})))
		err := app.Start(context.Background())
		require.ErrorContains(t, err, "SQLITE_DB_URL")
		require.ErrorContains(t, err, "must start with \"file:\"")
		require.ErrorIs(t, err, ports.ErrInvalidArgument)
	})
	t.Run("InstallsAndClosesTheDriver", func(t *testing.T) {
		t.Setenv(sqlite.EnvVar, "file:"+filepath.Join(t.TempDir(), "boot.db"))
		app := core.NewApp(core.AppOptions{})
		require.NoError(t, app.Register(sqlite.NewProvider(wharf.ProviderOptions{})))
		require.NoError(t, app.Start(context.Background()))
		drv, err := core.Port[*wharf.Driver](app, wharf.DefaultPortName)
		require.NoError(t, err)
		require.Equal(t, "sqlite", drv.Dialect())
		db := drv.DB()
		require.NoError(t, db.PingContext(context.Background()))
		require.NoError(t, app.Stop(context.Background()))
		require.Error(t, db.PingContext(context.Background()), "db must be closed after Stop")
		_, err = core.Port[*wharf.Driver](app, wharf.DefaultPortName)
		require.ErrorIs(t, err, core.ErrPortNotFound)
	})
	t.Run("MemoryDatabaseWorksAcrossStatements", func(t *testing.T) {
		ctx := context.Background()
		drv, err := sqlite.Open(ctx, ":memory:", wharf.Options{})
		require.NoError(t, err)
		defer drv.Close()
		require.NoError(t, drv.Migrate(ctx))
		ob := drv.Outbox()
		_, err = ob.Enqueue(ctx, ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`)})
		require.NoError(t, err)
		st, err := ob.Stats(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, st.Ready)
	})
}

// TestOpen: Open takes SQLite URLs only, wharf.Open finds SQLite by the
// scheme, "sqlite:PATH" names the same file as "file:PATH", and the pool
// gets what Options.Pool asks (one connection for an in-memory database,
// whose connections would each see a database of their own).
func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("OtherDialectsURLsAreInvalid", func(t *testing.T) {
		t.Parallel()
		for _, u := range []string{"postgres://u:p@localhost:5432/app", "postgresql://u:p@localhost/app", "mysql://u:p@localhost:3306/app"} {
			drv, err := sqlite.Open(ctx, u, wharf.Options{})
			require.ErrorIs(t, err, ports.ErrInvalidArgument, u)
			require.Nil(t, drv, u)
		}
	})
	t.Run("WharfOpenPicksSQLiteByScheme", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		for _, u := range []string{"file:" + filepath.Join(dir, "a.db"), "sqlite:" + filepath.Join(dir, "b.db"), ":memory:"} {
			drv, err := wharf.Open(ctx, u, wharf.Options{})
			require.NoError(t, err, u)
			require.Equal(t, "sqlite", drv.Dialect(), u)
			require.Equal(t, "sqlite", drv.DB().Dialect().Name().String(), u)
			require.NoError(t, drv.Close())
		}
	})
	t.Run("SQLiteSchemeIsAFile", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "same.db")
		viaSQLite := openDriver(t, "sqlite:"+path, wharf.Options{})
		require.NoError(t, viaSQLite.Migrate(ctx))
		_, err := viaSQLite.Outbox().Enqueue(ctx, ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`)})
		require.NoError(t, err)
		viaFile := openDriver(t, "file:"+path, wharf.Options{})
		require.NoError(t, viaFile.CheckSchema(ctx), "sqlite:PATH created the tables in the file file:PATH opens")
		st, err := viaFile.Outbox().Stats(ctx)
		require.NoError(t, err)
		require.EqualValues(t, 1, st.Ready, "the message enqueued through sqlite:PATH is in file:PATH")
		var mode string
		require.NoError(t, viaSQLite.DB().QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode))
		require.Equal(t, "wal", mode, "sqlite:PATH gets the defaults of file:PATH")
	})
	t.Run("AppliesThePool", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name   string
			memory bool
			pool   wharf.PoolOptions
			want   int
		}{
			{"DefaultOnAFile", false, wharf.PoolOptions{}, wharf.DefaultMaxOpenConns},
			{"AskedOnAFile", false, wharf.PoolOptions{MaxOpenConns: 7}, 7},
			{"UnlimitedOnAFile", false, wharf.PoolOptions{MaxOpenConns: -1}, 0},
			{"DefaultInMemory", true, wharf.PoolOptions{}, 1},
			{"AskedInMemoryIsOne", true, wharf.PoolOptions{MaxOpenConns: 7}, 1},
		} {
			u := ":memory:"
			if !tt.memory {
				u = "file:" + filepath.Join(t.TempDir(), "pool.db")
			}
			drv := openDriver(t, u, wharf.Options{Pool: tt.pool})
			require.Equal(t, tt.want, drv.DB().Stats().MaxOpenConnections, tt.name)
		}
	})
}

// TestClaimUsesTheClaimIndex checks the plan of the claim on a table with
// many delivered-and-dead rows and fresh statistics: the eligible scan must
// search the partial claim index, not the table.
func TestClaimUsesTheClaimIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	drv := newTestDriver(t, wharf.Options{})
	db := drv.DB()
	require.NoError(t, drv.Migrate(ctx))
	ob := drv.Outbox()
	msgs := make([]ports.OutboxMessage, 2000)
	for i := range msgs {
		msgs[i] = ports.OutboxMessage{Topic: "t", Key: fmt.Sprintf("k%d", i%50), Payload: json.RawMessage(`{}`)}
	}
	_, err := ob.Enqueue(ctx, msgs...)
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "UPDATE outbox_messages SET status = 'dead' WHERE rowid % 10 != 0")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "ANALYZE")
	require.NoError(t, err)

	query, args := sqlite.ClaimSQL(drv, outboxsql.ClaimParams{
		Now: core.FormatTime(time.Now()), LockedUntil: core.FormatTime(time.Now().Add(time.Minute)),
		TokenPrefix: "x:", Limit: 10,
	})
	rows, err := db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	require.NoError(t, err)
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &notused, &detail))
		plan = append(plan, detail)
	}
	require.NoError(t, rows.Err())
	joined := strings.Join(plan, "\n")
	require.Contains(t, joined, "USING INDEX outbox_messages_claim_idx", joined)
	require.Contains(t, joined, "outbox_messages_key_idx", "the per-key check must use the key index:\n"+joined)
	require.NotContains(t, joined, "SCAN c\n", joined)
}

// TestUnitOfWorkRetriesRealBusy holds SQLite's write lock from a second
// connection so that the unit of work's BEGIN IMMEDIATE fails with a real
// SQLITE_BUSY; the unit of work must retry and succeed once the lock is gone.
func TestUnitOfWorkRetriesRealBusy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "busy.db")
	drv := openDriver(t, "file:"+path+"?_pragma=busy_timeout(20)", wharf.Options{})
	db := drv.DB()
	_, err := db.ExecContext(ctx, "CREATE TABLE items (id INTEGER PRIMARY KEY)")
	require.NoError(t, err)

	holder := openDriver(t, "file:"+path, wharf.Options{})
	lock, err := holder.DB().BeginTx(ctx, nil) // BEGIN IMMEDIATE: takes the write lock
	require.NoError(t, err)

	// The unit of work logs each retry; the first log releases the lock.
	retried := make(chan struct{})
	var once sync.Once
	logger := slog.New(handlerFunc(func(r slog.Record) {
		if strings.Contains(r.Message, "retrying transaction") {
			once.Do(func() { close(retried) })
		}
	}))
	probe, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (bun.IDB, error) { return tx.DB, nil },
		wharf.UnitOfWorkOptions{MaxAttempts: 1})
	require.NoError(t, err)
	perr := probe.Transaction(ctx, func(ctx context.Context, tx bun.IDB) error { return nil })
	require.ErrorIs(t, perr, ports.ErrBusy, "with the lock held, a single attempt must fail with a classified SQLITE_BUSY")
	require.ErrorIs(t, perr, ports.ErrRetryable)

	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (bun.IDB, error) { return tx.DB, nil },
		wharf.UnitOfWorkOptions{MaxAttempts: 1000, RetryDelay: time.Millisecond, Logger: logger})
	require.NoError(t, err)
	go func() {
		<-retried
		_ = lock.Rollback()
	}()
	var runs atomic.Int32
	err = uow.Transaction(ctx, func(ctx context.Context, tx bun.IDB) error {
		runs.Add(1)
		_, err := tx.ExecContext(ctx, "INSERT INTO items (id) VALUES (1)")
		return err
	})
	require.NoError(t, err)
	require.EqualValues(t, 1, runs.Load(), "fn runs only once BEGIN succeeds")
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM items").Scan(&n))
	require.Equal(t, 1, n)
}

type handlerFunc func(slog.Record)

func (h handlerFunc) Enabled(context.Context, slog.Level) bool      { return true }
func (h handlerFunc) Handle(_ context.Context, r slog.Record) error { h(r); return nil }
func (h handlerFunc) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h handlerFunc) WithGroup(string) slog.Handler                 { return h }

func TestTranslateError(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newTestDB(t)
	_, err := db.ExecContext(ctx, "CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "INSERT INTO u (id, name) VALUES (1, 'a')")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "INSERT INTO u (id, name) VALUES (2, 'a')")
	require.ErrorIs(t, sqlite.TranslateError(err), ports.ErrUniqueViolation)
	_, err = db.ExecContext(ctx, "INSERT INTO u (id, name) VALUES (1, 'b')")
	require.ErrorIs(t, sqlite.TranslateError(err), ports.ErrUniqueViolation)
	plain := errors.New("plain")
	require.Equal(t, plain, sqlite.TranslateError(plain))
	require.NoError(t, sqlite.TranslateError(nil))
}

// TestOpenErrorsNeverRepeatAPassword: a URL with user info (meant for
// another database, or mistyped) is never repeated whole.
func TestOpenErrorsNeverRepeatAPassword(t *testing.T) {
	t.Parallel()
	for _, url := range []string{
		"sqlite://app:s3cret@db.internal/x.db",
		"file://app:s3cret@/nonexistent-dir/x.db",
		"sqlite:app:s3cret@nowhere/x.db?mode=ro",
	} {
		_, err := sqlite.Open(t.Context(), url, wharf.Options{})
		require.Error(t, err, url)
		require.NotContains(t, err.Error(), "s3cret", url)
	}
}
