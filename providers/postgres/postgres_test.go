package postgres_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/postgres"
)

// secret is a password that must never appear in an error or a log.
const secret = "S3cr3t-Pa55w0rd"

func TestParseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		url      string
		wantMode pgx.QueryExecMode
		wantHost string
		params   map[string]string
	}{
		{name: "PostgresScheme", url: "postgres://u:" + secret + "@db.example:6543/app?sslmode=disable",
			wantMode: pgx.QueryExecModeSimpleProtocol, wantHost: "db.example"},
		{name: "PostgresqlScheme", url: "postgresql://u:" + secret + "@db.example/app?sslmode=disable",
			wantMode: pgx.QueryExecModeSimpleProtocol, wantHost: "db.example"},
		{name: "KeepsAnExplicitExecMode", url: "postgres://u@h/app?sslmode=disable&default_query_exec_mode=cache_statement",
			wantMode: pgx.QueryExecModeCacheStatement, wantHost: "h"},
		{name: "PassesRunTimeParameters", url: "postgres://u@h/app?sslmode=disable&search_path=tenant_a&application_name=api",
			wantMode: pgx.QueryExecModeSimpleProtocol, wantHost: "h",
			params: map[string]string{"search_path": "tenant_a", "application_name": "api"}},
		{name: "CachedStatementsWithCustomPlans", url: "postgres://u@h/app?sslmode=disable&default_query_exec_mode=cache_statement&plan_cache_mode=force_custom_plan",
			wantMode: pgx.QueryExecModeCacheStatement, wantHost: "h",
			params: map[string]string{"plan_cache_mode": "force_custom_plan"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := postgres.ParseURL(tt.url)
			require.NoError(t, err)
			require.Equal(t, tt.wantMode, cfg.DefaultQueryExecMode)
			require.Equal(t, tt.wantHost, cfg.Host)
			for k, v := range tt.params {
				require.Equal(t, v, cfg.RuntimeParams[k], k)
			}
		})
	}
}

func TestParseURLRejectsMalformedURLsWithoutThePassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, wantText string
	}{
		{"Empty", "", "empty URL"},
		{"OtherScheme", "mysql://u:" + secret + "@db.example/app", `"mysql://u@db.example/app"`},
		{"KeywordValueDSN", "host=db.example password=" + secret, "(not a URL): it must start with postgres://"},
		{"BadPort", "postgres://u:" + secret + "@db.example:99999x/app", "db.example:99999x"},
		{"NoHost", "postgres://u:" + secret + "@/app", "no host"},
		{"BadSSLMode", "postgres://u:" + secret + "@db.example/app?sslmode=sometimes", "db.example"},
		{"PasswordInQuery", "postgres://u@db.example:bad/app?password=" + secret, "db.example"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := postgres.ParseURL(tt.url)
			require.Error(t, err)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.Contains(t, err.Error(), tt.wantText)
			require.NotContains(t, err.Error(), secret, "the password must never appear in an error")
		})
	}
}

// closedPort returns a local TCP port nobody listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}

func startApp(t *testing.T, opts wharf.ProviderOptions) (*core.App, error) {
	t.Helper()
	app := core.NewApp(core.AppOptions{})
	require.NoError(t, app.Register(postgres.NewProvider(opts)))
	return app, app.Start(context.Background())
}

func TestProviderBoot(t *testing.T) {
	t.Run("MissingVariableNamesIt", func(t *testing.T) {
		t.Setenv(postgres.EnvVar, "")
		_, err := startApp(t, wharf.ProviderOptions{})
		require.ErrorContains(t, err, "POSTGRES_DB_URL is not set")
		require.ErrorIs(t, err, ports.ErrInvalidArgument)
	})
	t.Run("MalformedVariableNamesItAndTheHost", func(t *testing.T) {
		t.Setenv(postgres.EnvVar, "postgres://app:"+secret+"@db.internal:5x32/app")
		_, err := startApp(t, wharf.ProviderOptions{})
		require.ErrorContains(t, err, "POSTGRES_DB_URL")
		require.ErrorContains(t, err, "db.internal")
		require.NotContains(t, err.Error(), secret)
	})
	t.Run("UnreachableServerNamesTheVariableAndTheHost", func(t *testing.T) {
		hostPort := fmt.Sprintf("127.0.0.1:%d", closedPort(t))
		t.Setenv(postgres.EnvVar, "postgres://app:"+secret+"@"+hostPort+"/app?sslmode=disable&connect_timeout=5")
		_, err := startApp(t, wharf.ProviderOptions{})
		require.Error(t, err)
		require.ErrorContains(t, err, "POSTGRES_DB_URL")
		require.ErrorContains(t, err, hostPort)
		require.NotContains(t, err.Error(), secret)
	})
	t.Run("WrongPasswordNamesTheHostNotThePassword", func(t *testing.T) {
		u, err := url.Parse(baseURL(t))
		require.NoError(t, err)
		u.User = url.UserPassword(u.User.Username(), secret)
		cfg, err := pgx.ParseConfig(u.String())
		require.NoError(t, err)
		app, err := startApp(t, wharf.ProviderOptions{URL: u.String()})
		if err == nil {
			require.NoError(t, app.Stop(context.Background()))
			skipUnlessCI(t, "the server accepted a wrong password (trust authentication)")
		}
		require.ErrorContains(t, err, "Options.URL")
		require.ErrorContains(t, err, cfg.Host)
		require.NotContains(t, err.Error(), secret)
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr, "the server's error stays reachable")
		require.Equal(t, "28P01", pgErr.Code, "invalid_password")
	})
	t.Run("InstallsConfiguresAndClosesTheDB", func(t *testing.T) {
		t.Setenv(postgres.EnvVar, baseURL(t))
		app, err := startApp(t, wharf.ProviderOptions{Options: wharf.Options{Pool: wharf.PoolOptions{MaxOpenConns: 7, ConnMaxLifetime: time.Minute}}})
		require.NoError(t, err)
		drv, err := core.Port[*wharf.Driver](app, wharf.DefaultPortName)
		require.NoError(t, err)
		require.Equal(t, "postgres", drv.Dialect())
		db := drv.DB()
		require.NoError(t, db.PingContext(context.Background()))
		require.Equal(t, 7, db.Stats().MaxOpenConnections)
		var one int
		require.NoError(t, db.NewRaw("SELECT ?", 1).Scan(context.Background(), &one))
		require.Equal(t, 1, one)
		require.NoError(t, app.Stop(context.Background()))
		require.Error(t, db.PingContext(context.Background()), "db must be closed after Stop")
		_, err = core.Port[*wharf.Driver](app, wharf.DefaultPortName)
		require.ErrorIs(t, err, core.ErrPortNotFound)
	})
}

func TestTranslateError(t *testing.T) {
	t.Parallel()
	classified := &sqlbase.DBError{Kind: ports.ErrBusy, Retryable: true, Err: errors.New("x")}
	tests := []struct {
		name      string
		err       error
		kind      error // nil: returned unchanged
		retryable bool
	}{
		{"SerializationFailure", &pgconn.PgError{Code: "40001"}, ports.ErrSerialization, true},
		{"Deadlock", &pgconn.PgError{Code: "40P01"}, ports.ErrDeadlock, true},
		{"LockNotAvailable", &pgconn.PgError{Code: "55P03"}, ports.ErrLockNotAvailable, false},
		{"UniqueViolation", &pgconn.PgError{Code: "23505"}, ports.ErrUniqueViolation, false},
		{"WrappedSerializationFailure", fmt.Errorf("commit: %w", &pgconn.PgError{Code: "40001"}), ports.ErrSerialization, true},
		{"OtherSQLState", &pgconn.PgError{Code: "42P01"}, nil, false},
		{"PlainError", errors.New("plain"), nil, false},
		{"AlreadyClassified", classified, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := postgres.TranslateError(tt.err)
			if tt.kind == nil {
				require.Same(t, tt.err, got, "returned unchanged")
				return
			}
			require.ErrorIs(t, got, tt.kind)
			require.Equal(t, tt.retryable, errors.Is(got, ports.ErrRetryable))
			var pgErr *pgconn.PgError
			require.ErrorAs(t, got, &pgErr, "the driver error stays reachable")
		})
	}
	require.NoError(t, postgres.TranslateError(nil))
}

func TestTranslateErrorOfRealServerErrors(t *testing.T) {
	t.Parallel()
	eachRoute(t, testTranslateErrorOfRealServerErrors)
}

func testTranslateErrorOfRealServerErrors(t *testing.T, r route) {
	ctx := context.Background()
	db := routeDB(t, r)
	_, err := db.ExecContext(ctx, "CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "INSERT INTO u (id, name) VALUES (1, 'a')")
	require.NoError(t, err)

	t.Run("UniqueViolation", func(t *testing.T) {
		_, err := db.ExecContext(ctx, "INSERT INTO u (id, name) VALUES (2, 'a')")
		require.ErrorIs(t, postgres.TranslateError(err), ports.ErrUniqueViolation)
		_, err = db.ExecContext(ctx, "INSERT INTO u (id, name) VALUES (1, 'b')")
		require.ErrorIs(t, postgres.TranslateError(err), ports.ErrUniqueViolation)
	})
	t.Run("LockNotAvailable", func(t *testing.T) {
		holder, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer func() { _ = holder.Rollback() }()
		_, err = holder.ExecContext(ctx, "SELECT id FROM u WHERE id = 1 FOR UPDATE")
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, "SELECT id FROM u WHERE id = 1 FOR UPDATE NOWAIT")
		got := postgres.TranslateError(err)
		require.ErrorIs(t, got, ports.ErrLockNotAvailable)
		require.NotErrorIs(t, got, ports.ErrRetryable)
	})
}

// TestRealDeadlockIsClassified makes two transactions wait for each other's
// row lock; PostgreSQL aborts one with 40P01, which must translate to a
// retryable ports.ErrDeadlock.
func TestRealDeadlockIsClassified(t *testing.T) {
	t.Parallel()
	eachRoute(t, testRealDeadlockIsClassified)
}

func testRealDeadlockIsClassified(t *testing.T, r route) {
	ctx := context.Background()
	db := routeDB(t, r)
	_, err := db.ExecContext(ctx, "CREATE TABLE d (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "INSERT INTO d (id, n) VALUES (1, 0), (2, 0)")
	require.NoError(t, err)

	var firstLocks sync.WaitGroup
	firstLocks.Add(2)
	errs := make(chan error, 2)
	for i, order := range [][2]int{{1, 2}, {2, 1}} {
		go func() {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				firstLocks.Done()
				errs <- err
				return
			}
			defer func() { _ = tx.Rollback() }()
			_, err = tx.ExecContext(ctx, "UPDATE d SET n = n + 1 WHERE id = ?", order[0])
			firstLocks.Done()
			if err != nil {
				errs <- err
				return
			}
			firstLocks.Wait() // both hold their first row: the second updates deadlock
			if _, err := tx.ExecContext(ctx, "UPDATE d SET n = n + 1 WHERE id = ?", order[1]); err != nil {
				errs <- fmt.Errorf("transaction %d: %w", i, err)
				return // the deferred rollback lets the other one finish
			}
			errs <- tx.Commit()
		}()
	}
	var failures []error
	for range 2 {
		if err := <-errs; err != nil {
			failures = append(failures, err)
		}
	}
	require.Len(t, failures, 1, "exactly one transaction is chosen as the deadlock victim: %v", failures)
	got := postgres.TranslateError(failures[0])
	require.ErrorIs(t, got, ports.ErrDeadlock)
	require.ErrorIs(t, got, ports.ErrRetryable)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, got, &pgErr)
	require.Equal(t, "40P01", pgErr.Code)
}

// TestUnitOfWorkRetriesRealSerializationFailure runs two SERIALIZABLE
// transactions that both read the ledger's maximum and then insert max+1.
// Both read before either writes, so PostgreSQL must abort one (40001); the
// unit of work re-runs it with a fresh snapshot and both succeed.
func TestUnitOfWorkRetriesRealSerializationFailure(t *testing.T) {
	t.Parallel()
	eachRoute(t, testUnitOfWorkRetriesRealSerializationFailure)
}

func testUnitOfWorkRetriesRealSerializationFailure(t *testing.T, r route) {
	ctx := context.Background()
	drv := routeDriver(t, r, wharf.Options{})
	db := drv.DB()
	_, err := db.ExecContext(ctx, "CREATE TABLE ledger (n INTEGER PRIMARY KEY)")
	require.NoError(t, err)
	uow, err := wharf.NewUnitOfWork(drv, txDB,
		wharf.UnitOfWorkOptions{TxOptions: &sql.TxOptions{Isolation: sql.LevelSerializable}, MaxAttempts: 20, RetryDelay: time.Millisecond})
	require.NoError(t, err)

	var runs atomic.Int32
	var readers sync.WaitGroup
	readers.Add(2)
	results := make(chan error, 2)
	for range 2 {
		go func() {
			first := true
			results <- uow.Transaction(ctx, func(ctx context.Context, tx bun.IDB) error {
				runs.Add(1)
				var max int
				if err := tx.NewRaw("SELECT COALESCE(MAX(n), 0) FROM ledger").Scan(ctx, &max); err != nil {
					return err
				}
				if first { // first attempt only: wait until both have read
					first = false
					readers.Done()
					readers.Wait()
				}
				_, err := tx.ExecContext(ctx, "INSERT INTO ledger (n) VALUES (?)", max+1)
				return err
			})
		}()
	}
	for range 2 {
		require.NoError(t, <-results, "both transactions succeed, one after a retry")
	}
	require.GreaterOrEqual(t, runs.Load(), int32(3), "the serialization failure re-ran fn")
	var got []int
	require.NoError(t, db.NewRaw("SELECT n FROM ledger ORDER BY n").Scan(ctx, &got))
	require.Equal(t, []int{1, 2}, got, "the retry saw the committed row: the result is serializable")
}

// txDB is the build function of units of work that need only the
// transaction.
func txDB(tx wharf.Tx) (bun.IDB, error) { return tx.DB, nil }

func TestUnitOfWorkHonoursTxOptions(t *testing.T) {
	t.Parallel()
	eachRoute(t, testUnitOfWorkHonoursTxOptions)
}

func testUnitOfWorkHonoursTxOptions(t *testing.T, r route) {
	ctx := context.Background()
	drv := routeDriver(t, r, wharf.Options{})
	db := drv.DB()
	_, err := db.ExecContext(ctx, "CREATE TABLE items (id INTEGER PRIMARY KEY)")
	require.NoError(t, err)
	tests := []struct {
		name      string
		opts      *sql.TxOptions
		isolation string
		readOnly  string
	}{
		{"Default", nil, "read committed", "off"},
		{"RepeatableRead", &sql.TxOptions{Isolation: sql.LevelRepeatableRead}, "repeatable read", "off"},
		{"Serializable", &sql.TxOptions{Isolation: sql.LevelSerializable}, "serializable", "off"},
		{"ReadOnly", &sql.TxOptions{ReadOnly: true}, "read committed", "on"},
		{"SerializableReadOnly", &sql.TxOptions{Isolation: sql.LevelSerializable, ReadOnly: true}, "serializable", "on"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			uow, err := wharf.NewUnitOfWork(drv, txDB, wharf.UnitOfWorkOptions{TxOptions: tt.opts})
			require.NoError(t, err)
			var isolation, readOnly string
			err = uow.Transaction(ctx, func(ctx context.Context, tx bun.IDB) error {
				if err := tx.QueryRowContext(ctx, "SHOW transaction_isolation").Scan(&isolation); err != nil {
					return err
				}
				return tx.QueryRowContext(ctx, "SHOW transaction_read_only").Scan(&readOnly)
			})
			require.NoError(t, err)
			require.Equal(t, tt.isolation, isolation)
			require.Equal(t, tt.readOnly, readOnly)
		})
	}
	t.Run("WriteInReadOnlyFails", func(t *testing.T) {
		t.Parallel()
		var runs atomic.Int32
		uow, err := wharf.NewUnitOfWork(drv, txDB, wharf.UnitOfWorkOptions{TxOptions: &sql.TxOptions{ReadOnly: true}})
		require.NoError(t, err)
		err = uow.Transaction(ctx, func(ctx context.Context, tx bun.IDB) error {
			runs.Add(1)
			_, err := tx.ExecContext(ctx, "INSERT INTO items (id) VALUES (1)")
			return err
		})
		var pgErr *pgconn.PgError
		require.ErrorAs(t, err, &pgErr)
		require.Equal(t, "25006", pgErr.Code, "read_only_sql_transaction")
		require.NotErrorIs(t, err, ports.ErrRetryable)
		require.EqualValues(t, 1, runs.Load(), "not retried")
	})
}

// TestIdempotencyUnderRepeatableRead shows why the store needs no locking
// read: a REPEATABLE READ transaction whose snapshot predates a committed
// reservation gets a retryable serialization failure from the INSERT, and
// the unit of work's retry then replays the result.
func TestIdempotencyUnderRepeatableRead(t *testing.T) {
	t.Parallel()
	eachRoute(t, testIdempotencyUnderRepeatableRead)
}

func testIdempotencyUnderRepeatableRead(t *testing.T, r route) {
	ctx := context.Background()
	drv := routeMigrated(t, r)
	store := drv.Idempotency()
	req := ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "orders.create", Key: "k-1"}, Fingerprint: "fp"}

	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (wharf.Idempotency, error) {
		return tx.Idempotency, nil
	}, wharf.UnitOfWorkOptions{TxOptions: &sql.TxOptions{Isolation: sql.LevelRepeatableRead}, MaxAttempts: 3})
	require.NoError(t, err)

	var attempts []ports.ReserveStatus
	var firstErr error
	err = uow.Transaction(ctx, func(ctx context.Context, s wharf.Idempotency) error {
		if len(attempts) == 0 && firstErr == nil {
			// Take the snapshot, then let another request reserve and
			// complete the key and commit.
			if _, err := s.Reserve(ctx, ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "warm", Key: "up"}, Fingerprint: "x"}); err != nil {
				return err
			}
			r, err := store.Reserve(ctx, req)
			if err != nil {
				return err
			}
			if err := store.Complete(ctx, r, json.RawMessage(`{"order":7}`)); err != nil {
				return err
			}
		}
		r, err := s.Reserve(ctx, req)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return err
		}
		attempts = append(attempts, r.Status)
		if r.Status == ports.Replay {
			require.JSONEq(t, `{"order":7}`, string(r.Result))
		}
		return nil
	})
	require.NoError(t, err)
	require.ErrorIs(t, firstErr, ports.ErrSerialization, "the stale snapshot cannot ignore the committed record")
	require.ErrorIs(t, firstErr, ports.ErrRetryable)
	require.Equal(t, []ports.ReserveStatus{ports.Replay}, attempts, "the retry replays the stored result")
}

// TestSchemaQualifiedTables migrates and uses tables in a schema that is not
// on the connection's search_path.
func TestSchemaQualifiedTables(t *testing.T) {
	t.Parallel()
	eachRoute(t, testSchemaQualifiedTables)
}

func testSchemaQualifiedTables(t *testing.T, rt route) {
	ctx := context.Background()
	other := "other"
	outboxTable, idemTable := other+".outbox_messages", other+".idem_records"
	drv := routeDriver(t, rt, wharf.Options{ // search_path is public, which stays empty
		Outbox:      wharf.OutboxOptions{TableName: outboxTable},
		Idempotency: wharf.IdempotencyOptions{TableName: idemTable},
	})
	db := drv.DB()
	_, err := db.ExecContext(ctx, "CREATE SCHEMA "+other)
	require.NoError(t, err)
	require.NoError(t, drv.Migrate(ctx))
	require.NoError(t, drv.Migrate(ctx), "Migrate is idempotent")
	require.NoError(t, drv.CheckSchema(ctx))

	var indexes []string
	require.NoError(t, db.NewRaw("SELECT indexname FROM pg_indexes WHERE schemaname = ? ORDER BY indexname", other).Scan(ctx, &indexes))
	require.Equal(t, []string{"idem_records_expires_idx", "idem_records_pkey", "outbox_messages_claim_idx", "outbox_messages_key_idx", "outbox_messages_pkey"}, indexes,
		"tables and indexes live in the named schema")
	var unqualified sql.NullString
	require.NoError(t, db.QueryRowContext(ctx, "SELECT to_regclass('outbox_messages')::text").Scan(&unqualified))
	require.False(t, unqualified.Valid, "nothing was created on the search_path")

	ob := drv.Outbox()
	ids, err := ob.Enqueue(ctx, ports.OutboxMessage{Topic: "t", Key: "k", Payload: json.RawMessage(`{}`)},
		ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	msgs, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.ElementsMatch(t, ids, []string{msgs[0].ID, msgs[1].ID})
	require.NoError(t, ob.Complete(ctx, msgs[0].Claim(), msgs[1].Claim()))
	st, err := ob.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, ports.OutboxStats{}, st)

	store := drv.Idempotency()
	req := ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "n", Key: "k"}, Fingerprint: "fp"}
	r, err := store.Reserve(ctx, req)
	require.NoError(t, err)
	require.Equal(t, ports.Reserved, r.Status)
	require.NoError(t, store.Complete(ctx, r, json.RawMessage(`{"ok":true}`)))
	r, err = store.Reserve(ctx, req)
	require.NoError(t, err)
	require.Equal(t, ports.Replay, r.Status)
	var n int
	require.NoError(t, db.NewRaw("SELECT COUNT(*) FROM "+other+".idem_records").Scan(ctx, &n))
	require.Equal(t, 1, n)
}

// TestClaimUsesTheClaimIndex checks the plan of the claim on a table where
// most rows are dead letters, with fresh statistics. The eligible rows must
// come from the partial claim index (never a sequential scan of the table),
// the per-key check from the key index, and the UPDATE must reach the rows
// through the primary key, for small and large batches alike. The claim
// index must be read in claim order, stopping after n rows (no sort), even
// for a batch that takes most of the pending rows (here 1000 of about 2500),
// where PostgreSQL would otherwise weigh a bitmap scan and a sort (see
// TestClaimPlanWithoutStatistics for the table without statistics).
func TestClaimUsesTheClaimIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	drv := migratedDriver(t)
	db, ob := drv.DB(), drv.Outbox()
	msgs := make([]ports.OutboxMessage, 500)
	for round := 0; round < 40; round++ { // 20,000 rows
		for i := range msgs {
			msgs[i] = ports.OutboxMessage{Topic: "t", Key: fmt.Sprintf("k%d", i%50), Payload: json.RawMessage(`{}`)}
		}
		_, err := ob.Enqueue(ctx, msgs...)
		require.NoError(t, err)
	}
	// Keep one row in eight pending (the last hex digit of a UUIDv7 is random).
	_, err := db.ExecContext(ctx, "UPDATE outbox_messages SET status = 'dead' WHERE right(id, 1) NOT IN ('0', '8')")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "VACUUM ANALYZE outbox_messages")
	require.NoError(t, err)

	for _, limit := range []int{1, 10, 100, 1000} {
		t.Run(fmt.Sprintf("Limit%d", limit), func(t *testing.T) {
			query, args := postgres.ClaimSQL(drv, outboxsql.ClaimParams{
				Now: core.FormatTime(time.Now()), LockedUntil: core.FormatTime(time.Now().Add(time.Minute)),
				TokenPrefix: "x:", Limit: limit, Topics: []string{"t"},
			})
			var plan []string
			require.NoError(t, db.NewRaw("EXPLAIN "+query, args...).Scan(ctx, &plan))
			joined := strings.Join(plan, "\n")
			require.Contains(t, joined, "Index Scan using outbox_messages_claim_idx on outbox_messages c", "the eligible rows come from an ordered scan of the claim index:\n"+joined)
			require.Contains(t, joined, "outbox_messages_key_idx on outbox_messages e", "the per-key check must use the key index:\n"+joined)
			require.Contains(t, joined, "Index Scan using outbox_messages_pkey on outbox_messages", "the update must use the primary key:\n"+joined)
			require.Contains(t, joined, "LockRows", joined)
			require.NotContains(t, joined, "Seq Scan", joined)
			require.NotContains(t, joined, "Sort", joined)
		})
	}
}

// TestClaimLocksOnlyWhatItClaims holds a claim's transaction open and checks
// that exactly its rows are locked: a second claimer skips them and gets the
// next ones at once.
func TestClaimLocksOnlyWhatItClaims(t *testing.T) {
	t.Parallel()
	eachRoute(t, testClaimLocksOnlyWhatItClaims)
}

func testClaimLocksOnlyWhatItClaims(t *testing.T, r route) {
	ctx := context.Background()
	drv := routeMigrated(t, r)
	db, ob := drv.DB(), drv.Outbox()
	msgs := make([]ports.OutboxMessage, 30)
	for i := range msgs {
		msgs[i] = ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`)}
	}
	ids, err := ob.Enqueue(ctx, msgs...)
	require.NoError(t, err)

	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = tx.Rollback() }()
	first, err := drv.Bind(tx).Outbox.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, first, 10)

	second, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute})
	require.NoError(t, err)
	require.Equal(t, ids[10:20], claimIDs(second), "the open claim holds exactly its 10 rows; the next 10 are free")
	require.NoError(t, tx.Rollback())
	third, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 20, Lease: time.Minute})
	require.NoError(t, err)
	require.Equal(t, append(append([]string{}, ids[:10]...), ids[20:30]...), claimIDs(third), "the rolled-back claim left its rows claimable")
}

func claimIDs(msgs []ports.ClaimedMessage) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// TestMigrateConcurrently runs Migrate from several connections at once on a
// fresh schema; without the advisory lock, concurrent CREATE ... IF NOT
// EXISTS can fail with a unique violation in the catalog.
func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	eachRoute(t, testMigrateConcurrently)
}

func testMigrateConcurrently(t *testing.T, r route) {
	ctx := context.Background()
	drv := routeDriver(t, r, wharf.Options{})
	const n = 6
	start := make(chan struct{})
	errs := make(chan error, n)
	for range n {
		go func() {
			<-start
			errs <- drv.Migrate(ctx)
		}()
	}
	close(start)
	for range n {
		require.NoError(t, <-errs)
	}
}

// TestMigrateIsAllOrNothing fails the second table (its schema does not
// exist) and checks that the first was rolled back with it.
func TestMigrateIsAllOrNothing(t *testing.T) {
	t.Parallel()
	eachRoute(t, testMigrateIsAllOrNothing)
}

func testMigrateIsAllOrNothing(t *testing.T, r route) {
	ctx := context.Background()
	drv := routeDriver(t, r, wharf.Options{
		Idempotency: wharf.IdempotencyOptions{TableName: "no_such_schema.idem"},
	})
	db := drv.DB()
	err := drv.Migrate(ctx)
	require.ErrorContains(t, err, "postgres migrate")
	var outbox sql.NullString
	require.NoError(t, db.QueryRowContext(ctx, "SELECT to_regclass('outbox_messages')::text").Scan(&outbox))
	require.False(t, outbox.Valid, "the outbox table was rolled back with the failed migration")
}

// TestClaimPlanWithoutStatistics plans the claim on a table that was never
// analyzed (autovacuum off, so it stays so) with 20,000 rows pending. With
// default selectivities the planner estimates one or two eligible rows; the
// claim must still read the claim index in claim order and stop after n
// rows, never sort the whole backlog (a bitmap scan plus a sort took 32 ms
// instead of 2 ms per claim of 100 here) nor scan the table.
func TestClaimPlanWithoutStatistics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	drv := migratedDriver(t)
	db, ob := drv.DB(), drv.Outbox()
	_, err := db.ExecContext(ctx, "ALTER TABLE outbox_messages SET (autovacuum_enabled = false)")
	require.NoError(t, err)
	msgs := make([]ports.OutboxMessage, 500)
	for round := 0; round < 40; round++ { // 20,000 rows, half of them keyed
		for i := range msgs {
			msgs[i] = ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`)}
			if i%2 == 0 {
				msgs[i].Key = fmt.Sprintf("k%d", i%50)
			}
		}
		_, err = ob.Enqueue(ctx, msgs...)
		require.NoError(t, err)
	}
	// The precondition: no statistics of any kind.
	var reltuples float64
	require.NoError(t, db.QueryRowContext(ctx, "SELECT reltuples FROM pg_class WHERE oid = 'outbox_messages'::regclass").Scan(&reltuples))
	require.Equal(t, float64(-1), reltuples, "the table must never have been vacuumed or analyzed")
	var stats int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'outbox_messages'").Scan(&stats))
	require.Zero(t, stats, "the table must have no column statistics")

	for _, topics := range [][]string{nil, {"t"}} {
		for _, limit := range []int{1, 100, 1000} {
			t.Run(fmt.Sprintf("Topics%d/Limit%d", len(topics), limit), func(t *testing.T) {
				query, args := postgres.ClaimSQL(drv, outboxsql.ClaimParams{
					Now: core.FormatTime(time.Now()), LockedUntil: core.FormatTime(time.Now().Add(time.Minute)),
					TokenPrefix: "x:", Limit: limit, Topics: topics,
				})
				var raw string
				require.NoError(t, db.NewRaw("EXPLAIN (FORMAT JSON) "+query, args...).Scan(ctx, &raw))
				var doc []struct{ Plan planNode }
				require.NoError(t, json.Unmarshal([]byte(raw), &doc))
				require.Len(t, doc, 1)
				var nodes []planNode
				doc[0].Plan.walk(func(n planNode) { nodes = append(nodes, n) })

				var claimScans int
				for _, n := range nodes {
					require.NotEqual(t, "Sort", n.NodeType, "the claim must not sort the backlog:\n%s", raw)
					require.NotEqual(t, "Incremental Sort", n.NodeType, raw)
					if n.RelationName != "outbox_messages" {
						continue
					}
					require.NotEqual(t, "Seq Scan", n.NodeType, "no sequential scan of the outbox:\n%s", raw)
					if n.Alias == "c" {
						claimScans++
						require.Equal(t, "Index Scan", n.NodeType, "the candidates come from an ordered index scan:\n%s", raw)
						require.Equal(t, "outbox_messages_claim_idx", n.IndexName, raw)
						require.Equal(t, "Forward", n.ScanDirection, raw)
					}
				}
				require.Equal(t, 1, claimScans, "one scan of the candidates:\n%s", raw)
			})
		}
	}
}

// planNode is a node of EXPLAIN (FORMAT JSON).
type planNode struct {
	NodeType      string     `json:"Node Type"`
	RelationName  string     `json:"Relation Name"`
	Alias         string     `json:"Alias"`
	IndexName     string     `json:"Index Name"`
	ScanDirection string     `json:"Scan Direction"`
	Plans         []planNode `json:"Plans"`
}

func (n planNode) walk(f func(planNode)) {
	f(n)
	for _, c := range n.Plans {
		c.walk(f)
	}
}

// TestOpen: Open takes PostgreSQL URLs only (never repeating a password),
// wharf.Open finds PostgreSQL by either scheme, and the pool gets what
// Options.Pool asks.
func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("OtherDialectsURLsAreInvalid", func(t *testing.T) {
		t.Parallel()
		for _, u := range []string{"mysql://u:" + secret + "@db.example:3306/app", "file:app.db", "sqlite:app.db", ":memory:"} {
			drv, err := postgres.Open(ctx, u, wharf.Options{})
			require.ErrorIs(t, err, ports.ErrInvalidArgument, u)
			require.Nil(t, drv, u)
			require.NotContains(t, err.Error(), secret, "the password must never appear in an error")
		}
	})
	t.Run("WharfOpenPicksPostgresByScheme", func(t *testing.T) {
		t.Parallel()
		eachRoute(t, func(t *testing.T, r route) {
			base := testdb.URL(t, r.env)
			_, rest, ok := strings.Cut(base, "://")
			require.True(t, ok, "a URL: %s", base)
			for _, scheme := range []string{"postgres", "postgresql"} {
				drv, err := wharf.Open(ctx, scheme+"://"+rest, wharf.Options{Pool: wharf.PoolOptions{MaxOpenConns: 2}})
				require.NoError(t, err, scheme)
				require.Equal(t, "postgres", drv.Dialect(), scheme)
				var one int
				require.NoError(t, drv.DB().QueryRowContext(ctx, "SELECT 1").Scan(&one), scheme)
				require.NoError(t, drv.Close())
				require.Error(t, drv.DB().PingContext(ctx), "Close closes the pool Open opened")
			}
		})
	})
	t.Run("AppliesThePool", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name string
			pool wharf.PoolOptions
			want int
		}{
			{"Default", wharf.PoolOptions{}, wharf.DefaultMaxOpenConns},
			{"Asked", wharf.PoolOptions{MaxOpenConns: 7}, 7},
			{"Unlimited", wharf.PoolOptions{MaxOpenConns: -1}, 0},
		} {
			drv, err := postgres.Open(ctx, baseURL(t), wharf.Options{Pool: tt.pool})
			require.NoError(t, err, tt.name)
			require.Equal(t, tt.want, drv.DB().Stats().MaxOpenConnections, tt.name)
			require.NoError(t, drv.Close())
		}
	})
}

// TestLongestTableNamesGetDistinctIndexes migrates two outbox tables (and
// two idempotency tables) of the longest accepted name, 63 bytes, that
// differ only in their last character, in one schema. PostgreSQL would cut
// "<table>_claim_idx" to 63 bytes, giving both tables the same index name,
// and CREATE INDEX IF NOT EXISTS would then skip the second table's index
// without a word: every index must exist, on its own table, under a
// distinct name of at most 63 bytes.
func TestLongestTableNamesGetDistinctIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u := newDatabase(t, direct).url
	stem := strings.Repeat("t", check.MaxIdentifierLength-1)
	type table struct {
		name     string
		suffixes []string // of its indexes besides the primary key
	}
	var tables []table
	for _, last := range []string{"a", "b"} {
		outbox, idem := stem+last, "i"+stem[1:]+last
		require.Len(t, outbox, 63)
		drv := openDriver(t, u, wharf.Options{
			Outbox:      wharf.OutboxOptions{TableName: outbox},
			Idempotency: wharf.IdempotencyOptions{TableName: idem},
		})
		require.NoError(t, drv.Migrate(ctx), outbox)
		require.NoError(t, drv.CheckSchema(ctx), "every index the driver derives exists: %s", outbox)
		// And the tables work.
		_, err := drv.Outbox().Enqueue(ctx, msg("t"))
		require.NoError(t, err)
		claimed, err := drv.Outbox().Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute})
		require.NoError(t, err)
		require.Len(t, claimed, 1, "the outbox %s holds its own message only", outbox)
		tables = append(tables,
			table{outbox, []string{"_claim_idx", "_key_idx"}},
			table{idem, []string{"_expires_idx"}})
	}
	db := openDriver(t, u, wharf.Options{}).DB()
	seen := map[string]string{} // index name -> its table
	for _, tb := range tables {
		rows, err := db.QueryContext(ctx, "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"+
			" JOIN pg_class r ON r.oid = i.indrelid JOIN pg_namespace n ON n.oid = r.relnamespace"+
			" WHERE n.nspname = 'public' AND r.relname = ? AND NOT i.indisprimary ORDER BY c.relname", tb.name)
		require.NoError(t, err)
		var names []string
		for rows.Next() {
			var name string
			require.NoError(t, rows.Scan(&name))
			names = append(names, name)
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		require.Len(t, names, len(tb.suffixes), "table %s has all its indexes: %v", tb.name, names)
		for _, suffix := range tb.suffixes {
			found := false
			for _, name := range names {
				found = found || strings.HasSuffix(name, suffix)
			}
			require.True(t, found, "table %s has an index ending in %s: %v", tb.name, suffix, names)
		}
		for _, name := range names {
			require.LessOrEqual(t, len(name), check.MaxIdentifierLength, name)
			other, dup := seen[name]
			require.False(t, dup, "index %s of %s is also the name of an index of %s", name, tb.name, other)
			seen[name] = tb.name
		}
	}
	require.Len(t, seen, 6, "two outbox tables of two indexes, two idempotency tables of one")
}

// TestOptionsReachTheOutboxAndTheStore: the outbox's and the idempotency
// store's options in wharf.Options reach them (PostgreSQL once had options
// of its own that mirrored the shared ones): the table names, the default
// MaxAttempts, the clock, and the idempotency TTL and lease.
func TestOptionsReachTheOutboxAndTheStore(t *testing.T) {
	t.Parallel()
	eachRoute(t, testOptionsReachTheOutboxAndTheStore)
}

func testOptionsReachTheOutboxAndTheStore(t *testing.T, r route) {
	ctx := context.Background()
	now := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	drv := routeDriver(t, r, wharf.Options{
		Outbox:      wharf.OutboxOptions{TableName: "jobs", DefaultMaxAttempts: 7},
		Idempotency: wharf.IdempotencyOptions{TableName: "keys", TTL: time.Hour, Lease: 2 * time.Minute},
		Now:         func() time.Time { return now },
	})
	db := drv.DB()
	require.NoError(t, drv.Migrate(ctx))
	_, err := drv.Outbox().Enqueue(ctx, msg("t"))
	require.NoError(t, err)
	recs, err := drv.Outbox().List(ctx, ports.OutboxFilter{})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	require.Equal(t, 7, recs[0].MaxAttempts, "Outbox.DefaultMaxAttempts")
	require.True(t, now.Equal(recs[0].CreatedAt), "Now: created at %v", recs[0].CreatedAt)
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM jobs").Scan(&n))
	require.Equal(t, 1, n, "Outbox.TableName")

	_, err = drv.Idempotency().Reserve(ctx, ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "n", Key: "k"}, Fingerprint: "fp"})
	require.NoError(t, err)
	var lockedUntil, expiresAt string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT locked_until, expires_at FROM keys").Scan(&lockedUntil, &expiresAt))
	require.Equal(t, core.FormatTime(now.Add(2*time.Minute)), lockedUntil, "Idempotency.Lease and Now")
	require.Equal(t, core.FormatTime(now.Add(time.Hour)), expiresAt, "Idempotency.TTL and Now")
}
