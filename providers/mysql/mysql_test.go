package mysql_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/mysqldialect"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/mysql"
)

// ---------------------------------------------------------------- URL / DSN

func TestDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		url   string
		check func(t *testing.T, cfg *gomysql.Config)
	}{
		{"AddsDefaults", "mysql://app:pw@db.example:3307/shop", func(t *testing.T, cfg *gomysql.Config) {
			require.Equal(t, "app", cfg.User)
			require.Equal(t, "pw", cfg.Passwd)
			require.Equal(t, "tcp", cfg.Net)
			require.Equal(t, "db.example:3307", cfg.Addr)
			require.Equal(t, "shop", cfg.DBName)
			require.Equal(t, mysql.DefaultTimeout, cfg.Timeout)
			require.Equal(t, mysql.DefaultReadTimeout, cfg.ReadTimeout)
			require.Equal(t, mysql.DefaultWriteTimeout, cfg.WriteTimeout)
			require.True(t, cfg.ClientFoundRows, "UPDATE must report matched rows")
			require.False(t, cfg.MultiStatements)
			require.False(t, cfg.ParseTime, "timestamps are stored as text")
			require.Contains(t, cfg.Params["sql_mode"], "NO_BACKSLASH_ESCAPES", "the session drops NO_BACKSLASH_ESCAPES")
		}},
		{"DefaultPort", "mysql://app:pw@localhost/shop", func(t *testing.T, cfg *gomysql.Config) {
			require.Equal(t, "localhost:3306", cfg.Addr)
		}},
		{"IPv6Host", "mysql://app:pw@[::1]:3310/shop", func(t *testing.T, cfg *gomysql.Config) {
			require.Equal(t, "[::1]:3310", cfg.Addr)
		}},
		{"PercentEncodedCredentials", "mysql://a%40pp:p%2Fw%3Ad%40%3F@h/shop", func(t *testing.T, cfg *gomysql.Config) {
			require.Equal(t, "a@pp", cfg.User)
			require.Equal(t, "p/w:d@?", cfg.Passwd)
		}},
		{"UnixSocket", "mysql://app:pw@localhost/shop?socket=/run/mysqld/mysqld.sock", func(t *testing.T, cfg *gomysql.Config) {
			require.Equal(t, "unix", cfg.Net)
			require.Equal(t, "/run/mysqld/mysqld.sock", cfg.Addr)
			require.NotContains(t, cfg.Params, "socket")
		}},
		{"KeepsTheUsersTimeoutsAndDriverParams", "mysql://app:pw@h/shop?timeout=2s&readTimeout=5s&writeTimeout=7s&tls=skip-verify&collation=utf8mb4_unicode_ci", func(t *testing.T, cfg *gomysql.Config) {
			require.Equal(t, 2*time.Second, cfg.Timeout)
			require.Equal(t, 5*time.Second, cfg.ReadTimeout)
			require.Equal(t, 7*time.Second, cfg.WriteTimeout)
			require.Equal(t, "skip-verify", cfg.TLSConfig)
			require.Equal(t, "utf8mb4_unicode_ci", cfg.Collation)
		}},
		{"PassesSessionVariables", "mysql://app:pw@h/shop?innodb_lock_wait_timeout=5&sql_mode=%27TRADITIONAL%27", func(t *testing.T, cfg *gomysql.Config) {
			require.Equal(t, "5", cfg.Params["innodb_lock_wait_timeout"])
			require.Equal(t, "'TRADITIONAL'", cfg.Params["sql_mode"], "the user's sql_mode is kept")
		}},
		{"AcceptsClientFoundRowsTrue", "mysql://app:pw@h/shop?clientFoundRows=true", func(t *testing.T, cfg *gomysql.Config) {
			require.True(t, cfg.ClientFoundRows)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn, err := mysql.DSN(tt.url)
			require.NoError(t, err)
			cfg, err := gomysql.ParseDSN(dsn)
			require.NoError(t, err, "DSN returns a DSN the driver parses")
			tt.check(t, cfg)
		})
	}
}

// secret is the password of the malformed URLs: no error may show it.
const secret = "s3cr3t-Passw0rd"

func TestDSNRejectsMalformedURLsWithoutShowingThePassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		url  string
		want string // in the error
	}{
		{"Empty", "", "empty URL"},
		{"OtherScheme", "postgres://u:" + secret + "@h/db", `scheme must be "mysql"`},
		{"MissingSlashes", "mysql:u:" + secret + "@h/db", `must start with "mysql://"`},
		{"BadPort", "mysql://u:" + secret + "@h:port/db", "malformed URL"},
		{"BadEscapeInPassword", "mysql://u:" + secret + "%zz@h/db", "malformed URL"},
		{"UnescapedSlashInPassword", "mysql://u:" + secret + "/x@h/db", "malformed URL"},
		{"NoDatabase", "mysql://u:" + secret + "@h/", "one database name"},
		{"TwoPathSegments", "mysql://u:" + secret + "@h/a/b", "one database name"},
		{"NoUser", "mysql://:" + secret + "@h/db", "no user name"},
		{"NoHost", "mysql://u:" + secret + "@/db", "no host"},
		{"ClientFoundRowsFalse", "mysql://u:" + secret + "@h/db?clientFoundRows=false", "clientFoundRows must be true"},
		{"MultiStatements", "mysql://u:" + secret + "@h/db?multiStatements=true", "multiStatements=true is refused"},
		{"OtherCharset", "mysql://u:" + secret + "@h/db?charset=latin1", "wharf needs utf8mb4"},
		{"OtherCollation", "mysql://u:" + secret + "@h/db?collation=latin1_swedish_ci", "utf8mb4 collation"},
		{"NoBackslashEscapes", "mysql://u:" + secret + "@h/db?sql_mode=%27NO_BACKSLASH_ESCAPES%27", "NO_BACKSLASH_ESCAPES is refused"},
		{"BadTimeout", "mysql://u:" + secret + "@h/db?timeout=soon", "soon"},
		{"BadQuery", "mysql://u:" + secret + "@h/db?a=%zz", "malformed query"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := mysql.DSN(tt.url)
			require.Error(t, err)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tt.want)
			require.NotContains(t, err.Error(), secret, "the error must not show the password")
			require.NotContains(t, err.Error(), "s3cr3t", "the error must not show part of the password")
		})
	}
}

// ---------------------------------------------------------------- provider

func TestProviderBoot(t *testing.T) {
	t.Run("MissingVariableNamesIt", func(t *testing.T) {
		t.Setenv(mysql.EnvVar, "")
		app := core.NewApp(core.AppOptions{})
		require.NoError(t, app.Register(mysql.NewProvider(wharf.ProviderOptions{})))
		err := app.Start(context.Background())
		require.ErrorContains(t, err, "MYSQL_DB_URL is not set")
		require.ErrorIs(t, err, ports.ErrInvalidArgument)
	})
	t.Run("MalformedVariableNamesItButNotThePassword", func(t *testing.T) {
		for _, u := range []string{
			"mysql://u:" + secret + "@h:port/db",
			"postgres://u:" + secret + "@h/db",
			"mysql://u:" + secret + "@h/db?multiStatements=true",
		} {
			t.Setenv(mysql.EnvVar, u)
			app := core.NewApp(core.AppOptions{})
			require.NoError(t, app.Register(mysql.NewProvider(wharf.ProviderOptions{})))
			err := app.Start(context.Background())
			require.ErrorContains(t, err, "MYSQL_DB_URL")
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.NotContains(t, err.Error(), secret)
		}
	})
	t.Run("WrongPasswordNamesTheVariableButNotThePassword", func(t *testing.T) {
		dbURL, _ := newDatabase(t)
		u, err := url.Parse(dbURL)
		require.NoError(t, err)
		u.User = url.UserPassword(u.User.Username(), secret)
		t.Setenv(mysql.EnvVar, u.String())
		app := core.NewApp(core.AppOptions{})
		require.NoError(t, app.Register(mysql.NewProvider(wharf.ProviderOptions{})))
		err = app.Start(context.Background())
		require.ErrorContains(t, err, "MYSQL_DB_URL")
		require.ErrorContains(t, err, "Access denied")
		require.NotContains(t, err.Error(), secret)
	})
	t.Run("InstallsConfiguresAndClosesTheDB", func(t *testing.T) {
		dbURL, _ := newDatabase(t)
		t.Setenv(mysql.EnvVar, dbURL)
		app := core.NewApp(core.AppOptions{})
		require.NoError(t, app.Register(mysql.NewProvider(wharf.ProviderOptions{
			Options: wharf.Options{Pool: wharf.PoolOptions{MaxOpenConns: 7, ConnMaxIdleTime: time.Minute}},
		})))
		require.NoError(t, app.Start(context.Background()))
		drv, err := core.Port[*wharf.Driver](app, wharf.DefaultPortName)
		require.NoError(t, err)
		require.Equal(t, "mysql", drv.Dialect())
		db := drv.DB()
		require.NoError(t, db.PingContext(context.Background()))
		require.Equal(t, 7, db.Stats().MaxOpenConnections, "Options.Pool.MaxOpenConns is applied")
		var mode string
		require.NoError(t, db.QueryRowContext(context.Background(), "SELECT @@sql_mode").Scan(&mode))
		require.NotContains(t, mode, "NO_BACKSLASH_ESCAPES")
		require.NoError(t, app.Stop(context.Background()))
		require.Error(t, db.PingContext(context.Background()), "db must be closed after Stop")
		_, err = core.Port[*wharf.Driver](app, wharf.DefaultPortName)
		require.ErrorIs(t, err, core.ErrPortNotFound)
	})
	t.Run("OpenDefaultsThePool", func(t *testing.T) {
		dbURL, _ := newDatabase(t)
		fresh, err := mysql.Open(context.Background(), dbURL, wharf.Options{})
		require.NoError(t, err)
		defer fresh.Close()
		require.Equal(t, wharf.DefaultMaxOpenConns, fresh.DB().Stats().MaxOpenConnections)
	})
}

// ---------------------------------------------------------------- helpers

// migrated returns a driver on a fresh database with its tables, its pool
// and its outbox.
func migrated(t *testing.T) (*wharf.Driver, *bun.DB, wharf.Outbox) {
	t.Helper()
	drv := newTestDriver(t, wharf.Options{})
	require.NoError(t, drv.Migrate(context.Background()))
	return drv, drv.DB(), drv.Outbox()
}

// explain returns EXPLAIN's rows as maps of column name to value.
func explain(t *testing.T, db bun.IDB, query string, args ...any) []map[string]string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "EXPLAIN "+query, args...)
	require.NoError(t, err)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var out []map[string]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		m := map[string]string{}
		for i, c := range cols {
			m[c] = vals[i].String
		}
		out = append(out, m)
	}
	require.NoError(t, rows.Err())
	return out
}

func planOf(t *testing.T, plan []map[string]string, table string) map[string]string {
	t.Helper()
	for _, r := range plan {
		if r["table"] == table {
			return r
		}
	}
	require.Failf(t, "table not in plan", "no row for table %q in %v", table, plan)
	return nil
}

func fill(t testing.TB, ob ports.Outbox, n int, key func(i int) string) []string {
	t.Helper()
	var ids []string
	for start := 0; start < n; start += 500 {
		msgs := make([]ports.OutboxMessage, min(500, n-start))
		for i := range msgs {
			msgs[i] = ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`)}
			if key != nil {
				msgs[i].Key = key(start + i)
			}
		}
		got, err := ob.Enqueue(context.Background(), msgs...)
		require.NoError(t, err)
		ids = append(ids, got...)
	}
	return ids
}

func claims(msgs []ports.ClaimedMessage) []ports.Claim {
	out := make([]ports.Claim, len(msgs))
	for i, m := range msgs {
		out[i] = m.Claim()
	}
	return out
}

// ---------------------------------------------------------------- plans and locks

// TestClaimUsesTheClaimIndex checks the plan of the claim's locking SELECT on
// a table with many dead rows and fresh statistics: the eligible scan reads
// the claim index in claim order, the per-key check the key index.
func TestClaimUsesTheClaimIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	drv, db, ob := migrated(t)
	fill(t, ob, 2000, func(i int) string { return fmt.Sprintf("k%d", i%50) })
	_, err := db.ExecContext(ctx, "UPDATE outbox_messages SET status = 'dead' WHERE RIGHT(id, 1) NOT IN ('0', '1')")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "ANALYZE TABLE outbox_messages")
	require.NoError(t, err)

	now := core.FormatTime(time.Now())
	// The claim's locking SELECT, from where its first statement finds the
	// first claimable row.
	var from string
	head, headArgs := mysql.HeadSQL(drv, outboxsql.ClaimParams{Now: now})
	require.NoError(t, db.QueryRowContext(ctx, head, headArgs...).Scan(&from))
	query, args := mysql.ClaimSQL(drv, outboxsql.ClaimParams{
		Now: now, LockedUntil: core.FormatTime(time.Now().Add(time.Minute)),
		TokenPrefix: "x:", Limit: 10,
	}, outboxsql.ClaimColumns, from)
	require.Contains(t, query, "FOR UPDATE SKIP LOCKED")
	plan := explain(t, db, query, args...)
	c := planOf(t, plan, "c")
	require.Equal(t, "claim_idx", c["key"], "the eligible scan must use the claim index: %v", plan)
	require.NotContains(t, c["Extra"], "filesort", "the claim index returns rows in claim order: %v", plan)
	e := planOf(t, plan, "e")
	require.Equal(t, "key_idx", e["key"], "the per-key check must use the key index: %v", plan)
}

// TestClaimLocksOneRangeOfTheClaimIndex checks the plan of the locking
// SELECT that Claim really sends (started at the first claimable row): one
// range over (status, available_at) of the claim index, in claim order. A
// bound on more columns lets the range optimizer cut the scan into
// intervals over every column of the index, and MariaDB's SKIP LOCKED then
// waits for rows other claimers hold (claimers deadlocked in
// TestProducersAndClaimersAtScale).
func TestClaimLocksOneRangeOfTheClaimIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, db, ob := migrated(t)
	rec := &recorder{}
	db.AddQueryHook(rec)
	fill(t, ob, 400, func(i int) string {
		if i%4 == 0 {
			return fmt.Sprintf("k%d", i%10)
		}
		return ""
	})
	_, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 100, Lease: time.Hour}) // leased rows at the head
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "ANALYZE TABLE outbox_messages")
	require.NoError(t, err)

	var locking string
	for _, q := range rec.capture(func() {
		msgs, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute})
		require.NoError(t, err)
		require.NotEmpty(t, msgs)
	}) {
		if strings.HasSuffix(q, "FOR UPDATE SKIP LOCKED") {
			locking = q
		}
	}
	require.Regexp(t, `c\.available_at >= '`, locking, "the claim starts its scan at the first claimable row")

	var doc string
	require.NoError(t, db.QueryRowContext(ctx, "EXPLAIN FORMAT=JSON "+locking).Scan(&doc))
	var plan any
	require.NoError(t, json.Unmarshal([]byte(doc), &plan))
	c := jsonTable(plan, "c")
	require.NotNil(t, c, "no table c in %s", doc)
	require.Equal(t, "claim_idx", c["key"], doc)
	require.Equal(t, "range", c["access_type"], doc)
	require.Equal(t, []any{"status", "available_at"}, c["used_key_parts"], "one range over (status, available_at): %s", doc)
	require.NotContains(t, doc, "filesort", "the claim index returns rows in claim order")
}

// jsonTable finds the "table" object named name in an EXPLAIN FORMAT=JSON
// document.
func jsonTable(v any, name string) map[string]any {
	switch v := v.(type) {
	case map[string]any:
		if v["table_name"] == name {
			return v
		}
		for _, e := range v {
			if t := jsonTable(e, name); t != nil {
				return t
			}
		}
	case []any:
		for _, e := range v {
			if t := jsonTable(e, name); t != nil {
				return t
			}
		}
	}
	return nil
}

// recorder captures the SQL a bun.DB sends while it is on.
type recorder struct {
	mu   sync.Mutex
	on   bool
	sqls []string
}

func (r *recorder) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on {
		r.sqls = append(r.sqls, e.Query)
	}
	return ctx
}

func (r *recorder) AfterQuery(context.Context, *bun.QueryEvent) {}

func (r *recorder) capture(fn func()) []string {
	r.mu.Lock()
	r.on, r.sqls = true, nil
	r.mu.Unlock()
	fn()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	return r.sqls
}

// TestIDListStatementsStayOnThePrimaryKey: when the IDs of a statement are
// most of the table's live rows (the tail of a drained outbox, whose
// delete-marked rows may still await purge), InnoDB prefers a full scan to
// primary-key lookups, and a locking full scan locks every record. The
// statements that Claim, Complete and Release send with a list of IDs must
// stay on the primary key.
func TestIDListStatementsStayOnThePrimaryKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	drv, db, ob := migrated(t)
	rec := &recorder{}
	db.AddQueryHook(rec)
	fill(t, ob, 12, nil)
	_, err := db.ExecContext(ctx, "ANALYZE TABLE outbox_messages")
	require.NoError(t, err)

	var sqls []string
	inRolledBackTx := func(fn func(ob wharf.Outbox) error) {
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		sqls = append(sqls, rec.capture(func() { require.NoError(t, fn(drv.Bind(tx).Outbox)) })...)
		require.NoError(t, tx.Rollback())
	}
	var msgs []ports.ClaimedMessage
	sqls = append(sqls, rec.capture(func() {
		msgs, err = ob.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute})
		require.NoError(t, err)
	})...)
	require.Len(t, msgs, 10)
	inRolledBackTx(func(ob wharf.Outbox) error { return ob.Complete(ctx, claims(msgs)...) })
	inRolledBackTx(func(ob wharf.Outbox) error { return ob.Release(ctx, claims(msgs)...) })
	// One claim lost: the fast DELETE is short and rolled back, and the
	// fallback's locking read and DELETE name the lost claim exactly.
	inRolledBackTx(func(ob wharf.Outbox) error {
		cs := claims(msgs)
		cs[0].Token += "-stale"
		err := ob.Complete(ctx, cs...)
		var lost *ports.ClaimLostError
		require.ErrorAs(t, err, &lost)
		require.Equal(t, []string{cs[0].ID}, lost.IDs)
		return nil
	})

	checked := 0
	for _, q := range sqls {
		if !strings.Contains(q, " IN ('") || strings.Contains(q, " AS c FORCE INDEX (claim_idx)") {
			continue // not a statement by a list of IDs
		}
		checked++
		plan := explain(t, db, q)
		require.Equal(t, "PRIMARY", plan[0]["key"], "%s\n%v", q, plan)
		require.Equal(t, "range", plan[0]["type"], "%s\n%v", q, plan)
		// Control: the same statement without the hint.
		bare := strings.ReplaceAll(q, " FORCE INDEX (PRIMARY)", "")
		bare = strings.Replace(bare, "DELETE `outbox_messages` FROM", "DELETE FROM", 1)
		t.Logf("unhinted plan type %q for %.40s...", explain(t, db, bare)[0]["type"], bare)
	}
	require.Equal(t, 6, checked, "claim UPDATE, complete's DELETE, release's UPDATE, a short complete's DELETE, locking read and DELETE: %q", sqls)
}

// ---------------------------------------------------------------- outbox specifics

// TestClaimDeadLettersExpiredFinalAttemptColumnByColumn checks the claim's
// UPDATE under MySQL's left-to-right assignment: the row dead-lettered
// because its lease expired on its final attempt keeps its attempts and
// loses its token and lease; the claimable row gets both and one more
// attempt.
func TestClaimDeadLettersExpiredFinalAttemptColumnByColumn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	drv := newTestDriver(t, wharf.Options{Now: clock})
	require.NoError(t, drv.Migrate(ctx))
	db, ob := drv.DB(), drv.Outbox()
	_, err := ob.Enqueue(ctx,
		ports.OutboxMessage{ID: "final", Topic: "t", Payload: json.RawMessage(`{}`), MaxAttempts: 1},
		ports.OutboxMessage{ID: "more", Topic: "t", Payload: json.RawMessage(`{}`), MaxAttempts: 3})
	require.NoError(t, err)
	first, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 2, Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, first, 2)

	now = now.Add(2 * time.Minute)
	again, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 2, Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, again, 1)
	require.Equal(t, "more", again[0].ID)
	require.Equal(t, 2, again[0].Attempts)

	type row struct {
		status              string
		attempts            int
		token, locked, last sql.NullString
	}
	read := func(id string) row {
		var r row
		require.NoError(t, db.QueryRowContext(ctx, "SELECT status, attempts, claim_token, locked_until, last_error FROM outbox_messages WHERE id = ?", id).
			Scan(&r.status, &r.attempts, &r.token, &r.locked, &r.last))
		return r
	}
	dead := read("final")
	require.Equal(t, "dead", dead.status)
	require.Equal(t, 1, dead.attempts, "a dead-lettered row keeps its attempts")
	require.False(t, dead.token.Valid, "a dead-lettered row has no token")
	require.False(t, dead.locked.Valid, "a dead-lettered row has no lease")
	require.Equal(t, outboxsql.LeaseExpiredError, dead.last.String)

	live := read("more")
	require.Equal(t, "pending", live.status)
	require.Equal(t, 2, live.attempts)
	require.Equal(t, again[0].Token, live.token.String)
	require.Equal(t, core.FormatTime(now.Add(time.Minute)), live.locked.String)
	require.False(t, live.last.Valid)

	// The claim derives the claimed message from the row it locked and the
	// UPDATE it sent, without reading it back: it must be the stored row.
	stored, err := ob.List(ctx, ports.OutboxFilter{Status: ports.StatusPending})
	require.NoError(t, err)
	require.Len(t, stored, 1)
	got, want := again[0], stored[0]
	require.Equal(t, want.ID, got.ID)
	require.Equal(t, want.Attempts, got.Attempts)
	require.Equal(t, want.MaxAttempts, got.MaxAttempts)
	require.True(t, want.LockedUntil.Equal(got.LockedUntil), "lease %v, stored %v", got.LockedUntil, want.LockedUntil)
	require.True(t, want.AvailableAt.Equal(got.AvailableAt))
	require.True(t, want.CreatedAt.Equal(got.CreatedAt))
	require.Equal(t, want.LastError, got.LastError)
	require.Equal(t, want.Topic, got.Topic)
	require.JSONEq(t, string(want.Payload), string(got.Payload))
}

// TestExtendToTheSameLeaseIsNotClaimLost renews a lease to the value it
// already has (same clock instant, same lease). MySQL reports 0 changed rows
// for such an UPDATE; with clientFoundRows it reports the matched row.
func TestExtendToTheSameLeaseIsNotClaimLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	drv := newTestDriver(t, wharf.Options{Now: func() time.Time { return now }})
	require.NoError(t, drv.Migrate(ctx))
	ob := drv.Outbox()
	_, err := ob.Enqueue(ctx, ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	msgs, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 1, Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	for range 2 {
		until, err := ob.Extend(ctx, msgs[0].Claim(), time.Minute)
		require.NoError(t, err, "a renewal that changes nothing still holds the claim")
		require.Equal(t, msgs[0].LockedUntil, until)
	}
	require.NoError(t, ob.Complete(ctx, msgs[0].Claim()))
}

// TestBinaryKeyColumnsCompareExactly: IDs, topics and ordering keys are
// compared byte for byte, so values differing only by trailing spaces are
// different (a utf8mb4_bin VARCHAR would treat them as equal).
func TestBinaryKeyColumnsCompareExactly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, _, ob := migrated(t)
	_, err := ob.Enqueue(ctx,
		ports.OutboxMessage{ID: "x", Topic: "t", Key: "K", Payload: json.RawMessage(`{}`)},
		ports.OutboxMessage{ID: "x ", Topic: "t ", Key: "K ", Payload: json.RawMessage(`{}`)},
		ports.OutboxMessage{ID: "y", Topic: "T", Payload: json.RawMessage(`{}`)},
	)
	require.NoError(t, err, "IDs that differ by a trailing space are distinct")
	got, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute, Topics: []string{"t"}})
	require.NoError(t, err)
	require.Len(t, got, 1, "topic \"t\" matches neither \"t \" nor \"T\"")
	require.Equal(t, "x", got[0].ID)
	other, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute, Topics: []string{"t "}})
	require.NoError(t, err)
	require.Len(t, other, 1, "key \"K \" is not blocked by the leased \"K\"")
	require.Equal(t, "x ", other[0].ID)
	require.Equal(t, "K ", other[0].Key)
}

// TestClaimInsideCallerTransaction binds the outbox to a transaction: the
// claim runs in a savepoint and rolls back with the caller.
func TestClaimInsideCallerTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	drv, db, ob := migrated(t)
	fill(t, ob, 3, nil)
	tx, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	msgs, err := drv.Bind(tx).Outbox.Claim(ctx, ports.ClaimOptions{Limit: 2, Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.NoError(t, tx.Rollback())
	again, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute})
	require.NoError(t, err)
	require.Len(t, again, 3, "the rolled-back claim released its messages")
	require.Equal(t, 1, again[0].Attempts)
}

// TestDatabaseQualifiedAndLongTableNames uses tables in another database and
// a table name of the maximum length (its index names must still fit
// MySQL's 64 characters).
func TestDatabaseQualifiedAndLongTableNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newTestDB(t)
	_, other := newDatabase(t)
	long := strings.Repeat("o", check.MaxIdentifierLength)
	for _, names := range [][2]string{
		{other + ".outbox_messages", other + ".idempotency_records"},
		{long, "i" + long[1:]},
	} {
		t.Run(strings.ReplaceAll(names[0], ".", "_")[:20], func(t *testing.T) {
			drv := newDriver(t, db, wharf.Options{Outbox: wharf.OutboxOptions{TableName: names[0]}, Idempotency: wharf.IdempotencyOptions{TableName: names[1]}})
			require.NoError(t, drv.Migrate(ctx))
			require.NoError(t, drv.Migrate(ctx), "Migrate is idempotent")
			require.NoError(t, drv.CheckSchema(ctx))
			ob := drv.Outbox()
			ids := fill(t, ob, 4, nil)
			msgs, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 4, Lease: time.Minute})
			require.NoError(t, err)
			require.Len(t, msgs, 4)
			require.NoError(t, ob.Complete(ctx, claims(msgs[:2])...))
			require.NoError(t, ob.Release(ctx, claims(msgs[2:])...))
			require.ErrorIs(t, ob.Complete(ctx, msgs[0].Claim()), ports.ErrClaimLost)
			recs, err := ob.List(ctx, ports.OutboxFilter{})
			require.NoError(t, err)
			require.Len(t, recs, 2)
			require.Equal(t, ids[2:], []string{recs[0].ID, recs[1].ID})

			store := drv.Idempotency()
			req := ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "n", Key: "k"}, Fingerprint: "fp"}
			r, err := store.Reserve(ctx, req)
			require.NoError(t, err)
			require.Equal(t, ports.Reserved, r.Status)
			require.NoError(t, store.Complete(ctx, r, json.RawMessage(`{"ok":true}`)))
			p, err := store.Reserve(ctx, req)
			require.NoError(t, err)
			require.Equal(t, ports.Replay, p.Status)
		})
	}
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+other+"`.outbox_messages").Scan(&n))
	require.Equal(t, 2, n, "the qualified table is in the other database")
}

// ---------------------------------------------------------------- strict mode off

// TestNothingIsTruncatedWithoutStrictMode runs with sql_mode=” (the server
// would silently cut over-long values): over-long keys are still refused
// before any write, and the longest allowed values of 4-byte characters
// round-trip intact.
func TestNothingIsTruncatedWithoutStrictMode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL, _ := newDatabase(t)
	drv := openDriver(t, dbURL+"?sql_mode=%27%27", wharf.Options{})
	db := drv.DB()
	var mode string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT @@SESSION.sql_mode").Scan(&mode))
	require.Empty(t, mode, "strict mode is off in this session")
	require.NoError(t, drv.Migrate(ctx))

	// Control: in this mode the server itself truncates.
	_, err := db.ExecContext(ctx, "CREATE TABLE ctl (v VARCHAR(3))")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "INSERT INTO ctl VALUES ('abcdef')")
	require.NoError(t, err, "control: no error without strict mode")
	var v string
	require.NoError(t, db.QueryRowContext(ctx, "SELECT v FROM ctl").Scan(&v))
	require.Equal(t, "abc", v, "control: the server truncated silently")

	emoji := func(n int) string { return strings.Repeat("🚢", n) }
	t.Run("Idempotency", func(t *testing.T) {
		store := drv.Idempotency()
		for name, req := range map[string]ports.ReserveRequest{
			"Key256":         {IdempotencyKey: ports.IdempotencyKey{Namespace: "n", Key: emoji(256)}, Fingerprint: "fp"},
			"Namespace256":   {IdempotencyKey: ports.IdempotencyKey{Namespace: emoji(256), Key: "k"}, Fingerprint: "fp"},
			"Fingerprint256": {IdempotencyKey: ports.IdempotencyKey{Namespace: "n", Key: "k"}, Fingerprint: emoji(256)},
			"Scope256":       {IdempotencyKey: ports.IdempotencyKey{Namespace: "n", Key: "k", Scope: map[string]string{"s": emoji(249)}}, Fingerprint: "fp"},
		} {
			_, err := store.Reserve(ctx, req)
			require.ErrorIs(t, err, ports.ErrInvalidArgument, name)
		}
		var n int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM idempotency_records").Scan(&n))
		require.Zero(t, n, "nothing was written")

		scope := map[string]string{"s": emoji(247)} // {"s":"..."} is 255 characters
		canonical, err := json.Marshal(scope)       // the stored scope: JSON with sorted keys
		require.NoError(t, err)
		scopeKey := string(canonical)
		require.Equal(t, 255, len([]rune(scopeKey)))
		req := ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: emoji(255), Key: emoji(254) + "k", Scope: scope}, Fingerprint: emoji(255)}
		r, err := store.Reserve(ctx, req)
		require.NoError(t, err)
		require.Equal(t, ports.Reserved, r.Status)
		result := `{"note":"` + emoji(1000) + `"}`
		require.NoError(t, store.Complete(ctx, r, json.RawMessage(result)))
		p, err := store.Reserve(ctx, req)
		require.NoError(t, err)
		require.Equal(t, ports.Replay, p.Status, "the stored fingerprint matches: it was not cut")
		require.Equal(t, result, string(p.Result))
		var ns, key, sc, fp string
		require.NoError(t, db.QueryRowContext(ctx, "SELECT namespace, idem_key, scope, fingerprint FROM idempotency_records").Scan(&ns, &key, &sc, &fp))
		require.Equal(t, req.Namespace, ns)
		require.Equal(t, req.Key, key)
		require.Equal(t, scopeKey, sc)
		require.Equal(t, req.Fingerprint, fp)
	})
	t.Run("Outbox", func(t *testing.T) {
		ob := drv.Outbox()
		for name, m := range map[string]ports.OutboxMessage{
			"Topic256": {Topic: emoji(256), Payload: json.RawMessage(`{}`)},
			"Key256":   {Topic: "t", Key: emoji(256), Payload: json.RawMessage(`{}`)},
			"ID256":    {ID: emoji(256), Topic: "t", Payload: json.RawMessage(`{}`)},
		} {
			_, err := ob.Enqueue(ctx, m)
			require.ErrorIs(t, err, ports.ErrInvalidArgument, name)
		}
		m := ports.OutboxMessage{ID: emoji(255), Topic: emoji(255), Key: emoji(255),
			Payload: json.RawMessage(`{"p":"` + emoji(5000) + `"}`), Headers: map[string]string{"h": emoji(300)}}
		_, err := ob.Enqueue(ctx, m)
		require.NoError(t, err)
		got, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 1, Lease: time.Minute, Topics: []string{m.Topic}})
		require.NoError(t, err)
		require.Len(t, got, 1)
		require.Equal(t, m.ID, got[0].ID)
		require.Equal(t, m.Topic, got[0].Topic)
		require.Equal(t, m.Key, got[0].Key)
		require.Equal(t, string(m.Payload), string(got[0].Payload))
		require.Equal(t, m.Headers, got[0].Headers)
		lastErr := strings.Repeat("é", 70000) // longer than a TEXT column
		require.NoError(t, ob.Retry(ctx, got[0].Claim(), ports.RetryOptions{LastError: lastErr}))
		recs, err := ob.List(ctx, ports.OutboxFilter{})
		require.NoError(t, err)
		require.Len(t, recs, 1)
		require.Equal(t, lastErr, recs[0].LastError)
	})
}

// ---------------------------------------------------------------- idempotency under REPEATABLE READ

// TestReserveSeesCommitsAfterTheSnapshot: a REPEATABLE READ transaction has
// taken its snapshot; another connection then completes the key. Reserve in
// the first transaction must replay the result, not reserve the key again
// nor report the stale in-progress record of its snapshot.
func TestReserveSeesCommitsAfterTheSnapshot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		reserveBefore    bool // the other connection reserves before the snapshot
		snapshotSeesRows int
	}{
		{"NoRecordInSnapshot", false, 0},
		{"InProgressRecordInSnapshot", true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			drv := newTestDriver(t, wharf.Options{})
			require.NoError(t, drv.Migrate(ctx))
			db, store := drv.DB(), drv.Idempotency()
			req := ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "orders", Key: "k-1"}, Fingerprint: "fp"}

			var (
				held ports.Reservation
				err  error
			)
			if tt.reserveBefore {
				held, err = store.Reserve(ctx, req)
				require.NoError(t, err)
				require.Equal(t, ports.Reserved, held.Status)
			}
			tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
			require.NoError(t, err)
			defer func() { _ = tx.Rollback() }()
			var n int
			require.NoError(t, tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM idempotency_records WHERE status = 'in_progress'").Scan(&n))
			require.Equal(t, tt.snapshotSeesRows, n, "the snapshot is taken")

			if !tt.reserveBefore {
				held, err = store.Reserve(ctx, req)
				require.NoError(t, err)
				require.Equal(t, ports.Reserved, held.Status)
			}
			require.NoError(t, store.Complete(ctx, held, json.RawMessage(`{"order":1}`)))
			require.NoError(t, tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM idempotency_records WHERE status = 'in_progress'").Scan(&n))
			require.Equal(t, tt.snapshotSeesRows, n, "the snapshot still shows the old state")

			r, err := drv.Bind(tx).Idempotency.Reserve(ctx, req)
			require.NoError(t, err)
			require.Equal(t, ports.Replay.String(), r.Status.String())
			require.JSONEq(t, `{"order":1}`, string(r.Result))
			require.NoError(t, tx.Commit())
		})
	}
}

// TestConcurrentReservesInTransactionsDoNotDeadlock: while one transaction
// holds a fresh reservation, others in their own transactions try the same
// key and wait on it. When the holder completes and commits, every waiter
// holds a shared lock on the row (from INSERT IGNORE's duplicate check);
// reading it with a shared locking read lets all of them replay at once,
// where FOR UPDATE would make them deadlock. No retries are allowed here.
func TestConcurrentReservesInTransactionsDoNotDeadlock(t *testing.T) {
	t.Parallel()
	const waiters = 6
	ctx := context.Background()
	drv := newTestDriver(t, wharf.Options{})
	require.NoError(t, drv.Migrate(ctx))
	db := drv.DB()
	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (wharf.Idempotency, error) {
		return tx.Idempotency, nil
	}, wharf.UnitOfWorkOptions{MaxAttempts: 1})
	require.NoError(t, err)
	req := ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "orders", Key: "k-1"}, Fingerprint: "fp"}

	holder, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback() }()
	hs := drv.Bind(holder).Idempotency
	r, err := hs.Reserve(ctx, req)
	require.NoError(t, err)
	require.Equal(t, ports.Reserved, r.Status)

	results := make([]ports.ReserveStatus, waiters)
	errs := make([]error, waiters)
	var wg sync.WaitGroup
	for i := range waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = uow.Transaction(ctx, func(ctx context.Context, store wharf.Idempotency) error {
				res, err := store.Reserve(ctx, req)
				results[i] = res.Status
				return err
			})
		}()
	}
	// Every waiter's INSERT IGNORE is running, blocked on the holder's
	// uncommitted row.
	require.Eventually(t, func() bool {
		var n int
		err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST"+
			" WHERE DB = DATABASE() AND COMMAND = 'Query' AND INFO LIKE 'INSERT IGNORE INTO%'").Scan(&n)
		return err == nil && n == waiters
	}, 10*time.Second, 5*time.Millisecond, "every waiter blocks on the holder's row")
	require.NoError(t, hs.Complete(ctx, r, json.RawMessage(`{"ok":true}`)))
	require.NoError(t, holder.Commit())
	wg.Wait()
	for i := range waiters {
		require.NoError(t, errs[i], "waiter %d", i)
		require.Equal(t, ports.Replay.String(), results[i].String(), "waiter %d", i)
	}
}

// ---------------------------------------------------------------- unit of work and errors

// TestUnitOfWorkRetriesRealDeadlock makes two transactions lock two rows in
// opposite orders. InnoDB aborts one with 1213; the unit of work rolls it
// back and runs fn again, and both succeed.
func TestUnitOfWorkRetriesRealDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	drv := newTestDriver(t, wharf.Options{})
	db := drv.DB()
	_, err := db.ExecContext(ctx, "CREATE TABLE pair (id INT PRIMARY KEY, n INT NOT NULL)")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "INSERT INTO pair VALUES (1, 0), (2, 0)")
	require.NoError(t, err)
	uow, err := wharf.NewUnitOfWork(drv, txDB, wharf.UnitOfWorkOptions{MaxAttempts: 3})
	require.NoError(t, err)

	var (
		mu       sync.Mutex
		seen     []error
		attempts atomic.Int32
	)
	record := func(err error) error {
		if err != nil {
			mu.Lock()
			seen = append(seen, err)
			mu.Unlock()
		}
		return err
	}
	locked := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	var once [2]sync.Once
	worker := func(first, second int) error {
		return uow.Transaction(ctx, func(ctx context.Context, tx bun.IDB) error {
			attempts.Add(1)
			if _, err := tx.ExecContext(ctx, "UPDATE pair SET n = n + 1 WHERE id = ?", first); err != nil {
				return record(err)
			}
			once[first-1].Do(func() { close(locked[first-1]) })
			<-locked[second-1] // both hold their first row before either asks for the second
			_, err := tx.ExecContext(ctx, "UPDATE pair SET n = n + 1 WHERE id = ?", second)
			return record(err)
		})
	}
	var wg sync.WaitGroup
	var errA, errB error
	wg.Add(2)
	go func() { defer wg.Done(); errA = worker(1, 2) }()
	go func() { defer wg.Done(); errB = worker(2, 1) }()
	wg.Wait()

	require.NoError(t, errA)
	require.NoError(t, errB)
	require.Len(t, seen, 1, "exactly one transaction was chosen as the deadlock victim: %v", seen)
	var me *gomysql.MySQLError
	require.ErrorAs(t, seen[0], &me)
	require.EqualValues(t, 1213, me.Number)
	classified := mysql.TranslateError(seen[0])
	require.ErrorIs(t, classified, ports.ErrDeadlock)
	require.ErrorIs(t, classified, ports.ErrRetryable)
	require.EqualValues(t, 3, attempts.Load(), "the victim ran fn a second time")
	var n1, n2 int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT (SELECT n FROM pair WHERE id = 1), (SELECT n FROM pair WHERE id = 2)").Scan(&n1, &n2))
	require.Equal(t, [2]int{2, 2}, [2]int{n1, n2}, "both transactions committed once")
}

// TestUnitOfWorkRetriesRealLockWaitTimeout: another connection holds a row
// lock; with innodb_lock_wait_timeout=1 the unit of work's UPDATE fails with
// 1205, which only rolls back that statement. The unit of work must roll back
// the whole transaction (the earlier INSERT too) and retry.
func TestUnitOfWorkRetriesRealLockWaitTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL, _ := newDatabase(t)
	drv := openDriver(t, dbURL+"?innodb_lock_wait_timeout=1", wharf.Options{})
	db := drv.DB()
	_, err := db.ExecContext(ctx, "CREATE TABLE locked (id INT PRIMARY KEY, n INT NOT NULL)")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "CREATE TABLE marks (id VARCHAR(32) PRIMARY KEY)")
	require.NoError(t, err)
	_, err = db.ExecContext(ctx, "INSERT INTO locked VALUES (1, 0)")
	require.NoError(t, err)

	holderDB := openDriver(t, dbURL, wharf.Options{}).DB()
	holder, err := holderDB.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = holder.Rollback() }()
	_, err = holder.ExecContext(ctx, "UPDATE locked SET n = n + 100 WHERE id = 1")
	require.NoError(t, err)

	var attempt atomic.Int32
	fn := func(ctx context.Context, tx bun.IDB) error {
		a := attempt.Add(1)
		if _, err := tx.ExecContext(ctx, "INSERT INTO marks VALUES (?)", fmt.Sprintf("attempt-%d", a)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "UPDATE locked SET n = n + 1 WHERE id = 1")
		return err
	}
	marks := func() []string {
		rows, err := db.QueryContext(ctx, "SELECT id FROM marks ORDER BY id")
		require.NoError(t, err)
		var out []string
		for rows.Next() {
			var s string
			require.NoError(t, rows.Scan(&s))
			out = append(out, s)
		}
		require.NoError(t, rows.Close())
		return out
	}

	probe, err := wharf.NewUnitOfWork(drv, txDB, wharf.UnitOfWorkOptions{MaxAttempts: 1})
	require.NoError(t, err)
	err = probe.Transaction(ctx, fn)
	require.ErrorIs(t, err, ports.ErrBusy, "a lock wait timeout is classified as busy")
	require.ErrorIs(t, err, ports.ErrRetryable)
	var me *gomysql.MySQLError
	require.ErrorAs(t, err, &me)
	require.EqualValues(t, 1205, me.Number)
	require.Empty(t, marks(), "the INSERT before the timed-out UPDATE was rolled back with the transaction")

	retried := make(chan struct{})
	var once sync.Once
	logger := slog.New(handlerFunc(func(r slog.Record) {
		if strings.Contains(r.Message, "retrying transaction") {
			once.Do(func() { close(retried) })
		}
	}))
	uow, err := wharf.NewUnitOfWork(drv, txDB, wharf.UnitOfWorkOptions{MaxAttempts: 5, Logger: logger})
	require.NoError(t, err)
	released := make(chan error, 1)
	go func() {
		<-retried
		released <- holder.Rollback()
	}()
	attempt.Store(0)
	require.NoError(t, uow.Transaction(ctx, fn))
	require.NoError(t, <-released)
	require.Equal(t, []string{"attempt-2"}, marks(), "only the successful attempt's write is committed")
	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT n FROM locked WHERE id = 1").Scan(&n))
	require.Equal(t, 1, n)
}

// txDB is the build function of units of work that need only the
// transaction.
func txDB(tx wharf.Tx) (bun.IDB, error) { return tx.DB, nil }

type handlerFunc func(slog.Record)

func (h handlerFunc) Enabled(context.Context, slog.Level) bool      { return true }
func (h handlerFunc) Handle(_ context.Context, r slog.Record) error { h(r); return nil }
func (h handlerFunc) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h handlerFunc) WithGroup(string) slog.Handler                 { return h }

func TestTranslateError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		number    uint16
		kind      error // nil: unchanged
		retryable bool
	}{
		{"Deadlock", 1213, ports.ErrDeadlock, true},
		{"LockWaitTimeout", 1205, ports.ErrBusy, true},
		{"TooManyConnections", 1040, ports.ErrUnavailable, true},
		{"TooManyUserConnections", 1203, ports.ErrUnavailable, true},
		{"DuplicateEntry", 1062, ports.ErrUniqueViolation, false},
		{"DuplicateEntryWithKeyName", 1586, ports.ErrUniqueViolation, false},
		{"NowaitLockNotAvailable", 3572, ports.ErrLockNotAvailable, false},
		{"NoSuchTableIsUnchanged", 1146, nil, false},
		{"SyntaxErrorIsUnchanged", 1064, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			driverErr := fmt.Errorf("exec: %w", &gomysql.MySQLError{Number: tt.number, Message: "m"})
			got := mysql.TranslateError(driverErr)
			if tt.kind == nil {
				require.Same(t, driverErr, got)
				require.NotErrorIs(t, got, ports.ErrRetryable)
				return
			}
			require.ErrorIs(t, got, tt.kind)
			require.ErrorIs(t, got, driverErr, "the driver error stays reachable")
			if tt.retryable {
				require.ErrorIs(t, got, ports.ErrRetryable)
			} else {
				require.NotErrorIs(t, got, ports.ErrRetryable)
			}
			require.Same(t, got, mysql.TranslateError(got), "an already classified error is returned unchanged")
		})
	}
	t.Run("RealDuplicateKey", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		db := newTestDB(t)
		_, err := db.ExecContext(ctx, "CREATE TABLE u (id INT PRIMARY KEY, name VARCHAR(10) UNIQUE)")
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, "INSERT INTO u VALUES (1, 'a')")
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, "INSERT INTO u VALUES (2, 'a')")
		require.ErrorIs(t, mysql.TranslateError(err), ports.ErrUniqueViolation)
		_, err = db.ExecContext(ctx, "INSERT INTO u VALUES (1, 'b')")
		require.ErrorIs(t, mysql.TranslateError(err), ports.ErrUniqueViolation)
		_, err = db.ExecContext(ctx, "SELECT * FROM no_such_table")
		require.Error(t, err)
		require.Equal(t, err, mysql.TranslateError(err))
	})
	t.Run("PlainAndNil", func(t *testing.T) {
		t.Parallel()
		plain := errors.New("plain")
		require.Equal(t, plain, mysql.TranslateError(plain))
		require.NoError(t, mysql.TranslateError(nil))
	})
}

// ---------------------------------------------------------------- concurrency

// TestProducersAndClaimersAtScale: 4 producers enqueue 10,000 messages (one
// in ten with an ordering key) in transactions while 8 claimers claim and
// complete them. Every message is
// delivered exactly once, and no call returns any error (in particular no
// deadlock reaches the caller; the test retries nothing, Claim runs a
// deadlock victim again, see TestClaimRunsAgainWhenChosenAsDeadlockVictim).
func TestProducersAndClaimersAtScale(t *testing.T) {
	t.Parallel()
	const (
		producers = 4
		perTx     = 25
		total     = 10000
		claimers  = 8
		batch     = 50
	)
	ctx := context.Background()
	drv, db, _ := migrated(t)
	deadlocksBefore := innodbDeadlocks(t, db)

	var (
		produced   atomic.Int64
		delivered  sync.Map
		count      atomic.Int64
		emptyLooks atomic.Int64 // empty claims after the producers finished, before the end
		errMu      sync.Mutex
		errs       []error
	)
	fail := func(err error) {
		errMu.Lock()
		errs = append(errs, err)
		errMu.Unlock()
	}
	done := make(chan struct{})
	committed := newSignal()
	var prodWG sync.WaitGroup
	for p := range producers {
		prodWG.Add(1)
		go func() {
			defer prodWG.Done()
			for i := 0; i < total/producers/perTx; i++ {
				msgs := make([]ports.OutboxMessage, perTx)
				for j := range msgs {
					msgs[j] = ports.OutboxMessage{Topic: "load", Payload: json.RawMessage(fmt.Sprintf(`{"p":%d,"i":%d,"j":%d}`, p, i, j))}
					if j%10 == 0 { // some per-key FIFO traffic too
						msgs[j].Key = fmt.Sprintf("p%d-k%d", p, i%8)
					}
				}
				err := db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
					_, err := drv.Bind(tx).Outbox.Enqueue(ctx, msgs...)
					return err
				})
				if err != nil {
					fail(fmt.Errorf("producer %d: %w", p, err))
					return
				}
				produced.Add(perTx)
				committed.broadcast()
			}
		}()
	}
	go func() { prodWG.Wait(); close(done) }()

	var claimWG sync.WaitGroup
	for w := range claimers {
		claimWG.Add(1)
		go func() {
			defer claimWG.Done()
			ob := drv.Outbox()
			var giveUp time.Time
			for {
				// Read the state before claiming. After the producers
				// finished, an empty claim does not prove that nothing is
				// left: SKIP LOCKED passes over a row that another claimer
				// holds for a moment while it checks the row (the per-key
				// rule) and then lets go. Claimers stop when everything
				// produced was delivered, and look again shortly until then.
				wake := committed.wait()
				finished := isClosed(done)
				msgs, err := ob.Claim(ctx, ports.ClaimOptions{Limit: batch, Lease: time.Hour})
				if err != nil {
					fail(fmt.Errorf("claimer %d: Claim: %w", w, err))
					return
				}
				if len(msgs) == 0 {
					if !finished {
						select {
						case <-wake:
						case <-done:
						}
						continue
					}
					if count.Load() >= total {
						return
					}
					emptyLooks.Add(1)
					if giveUp.IsZero() {
						giveUp = time.Now().Add(30 * time.Second)
					} else if time.Now().After(giveUp) {
						fail(fmt.Errorf("claimer %d: %d of %d messages still undelivered after 30s of empty claims", w, total-count.Load(), total))
						return
					}
					<-time.After(time.Millisecond) // the poll interval of this claimer
					continue
				}
				giveUp = time.Time{}
				for _, m := range msgs {
					if m.Attempts != 1 {
						fail(fmt.Errorf("message %s claimed with Attempts %d", m.ID, m.Attempts))
					}
				}
				if err := ob.Complete(ctx, claims(msgs)...); err != nil {
					fail(fmt.Errorf("claimer %d: Complete: %w", w, err))
					return
				}
				for _, m := range msgs {
					if prev, dup := delivered.LoadOrStore(m.ID, w); dup {
						fail(fmt.Errorf("message %s delivered twice (claimers %v and %d)", m.ID, prev, w))
					}
					count.Add(1)
				}
			}
		}()
	}
	claimWG.Wait()

	require.NoError(t, errors.Join(errs...))
	require.EqualValues(t, total, produced.Load())
	require.EqualValues(t, total, count.Load(), "every message delivered exactly once")
	var left int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM outbox_messages").Scan(&left))
	require.Zero(t, left)
	t.Logf("empty claims after the producers finished, before the last delivery: %d (mostly keyed messages waiting for their predecessor)", emptyLooks.Load())
	if before, ok := deadlocksBefore.(int64); ok {
		// Server-wide counter: other tests (the deadlock test) add to it.
		t.Logf("InnoDB deadlocks counted server-wide during the run: %d", innodbDeadlocks(t, db).(int64)-before)
	}
}

// signal wakes every waiter when something happened after they started
// waiting.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

// wait returns a channel closed by the next broadcast.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) broadcast() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// innodbDeadlocks reads MariaDB's Innodb_deadlocks counter (nil on servers
// without it).
func innodbDeadlocks(t *testing.T, db bun.IDB) any {
	t.Helper()
	var name string
	var n int64
	err := db.QueryRowContext(context.Background(), "SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'").Scan(&name, &n)
	if err != nil {
		return nil
	}
	return n
}

// ---------------------------------------------------------------- Open

// TestOpen: Open takes MySQL URLs only (never repeating a password),
// wharf.Open finds MySQL by the URL's scheme, and the pool gets what
// Options.Pool asks.
func TestOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	t.Run("OtherDialectsURLsAreInvalid", func(t *testing.T) {
		t.Parallel()
		for _, u := range []string{"postgres://u:" + secret + "@db.example:5432/app", "postgresql://u:" + secret + "@db.example/app", "file:app.db", "sqlite:app.db", ":memory:"} {
			drv, err := mysql.Open(ctx, u, wharf.Options{})
			require.ErrorIs(t, err, ports.ErrInvalidArgument, u)
			require.Nil(t, drv, u)
			require.NotContains(t, err.Error(), secret, "the error must not show the password")
		}
	})
	t.Run("WharfOpenPicksMySQLByScheme", func(t *testing.T) {
		t.Parallel()
		dbURL, _ := newDatabase(t)
		drv, err := wharf.Open(ctx, dbURL, wharf.Options{Pool: wharf.PoolOptions{MaxOpenConns: 2}})
		require.NoError(t, err)
		require.Equal(t, "mysql", drv.Dialect())
		var mode string
		require.NoError(t, drv.DB().QueryRowContext(ctx, "SELECT @@SESSION.sql_mode").Scan(&mode))
		require.NotContains(t, mode, "NO_BACKSLASH_ESCAPES", "wharf.Open applies the provider's DSN defaults")
		require.NoError(t, drv.Close())
		require.Error(t, drv.DB().PingContext(ctx), "Close closes the pool Open opened")
	})
	t.Run("WharfOpenTakesEveryRegisteredScheme", func(t *testing.T) {
		t.Parallel()
		dbURL, _ := newDatabase(t)
		_, rest, ok := strings.Cut(dbURL, "://")
		require.True(t, ok)
		drv, err := wharf.Open(ctx, "mariadb://"+rest, wharf.Options{Pool: wharf.PoolOptions{MaxOpenConns: 2}})
		require.NoError(t, err, "the mysql provider registers the mariadb scheme")
		require.Equal(t, "mysql", drv.Dialect())
		require.NoError(t, drv.Close())
	})
	t.Run("AppliesThePool", func(t *testing.T) {
		t.Parallel()
		dbURL, _ := newDatabase(t)
		for _, tt := range []struct {
			name string
			pool wharf.PoolOptions
			want int
		}{
			{"Default", wharf.PoolOptions{}, wharf.DefaultMaxOpenConns},
			{"Asked", wharf.PoolOptions{MaxOpenConns: 7}, 7},
			{"Unlimited", wharf.PoolOptions{MaxOpenConns: -1}, 0},
		} {
			drv, err := mysql.Open(ctx, dbURL, wharf.Options{Pool: tt.pool})
			require.NoError(t, err, tt.name)
			require.Equal(t, tt.want, drv.DB().Stats().MaxOpenConnections, tt.name)
			require.NoError(t, drv.Close())
		}
	})
}

// TestMigrateRefusesAPoolOpenedWithoutTheDSNsSettings: a pool the
// application opened itself, without clientFoundRows or with
// NO_BACKSLASH_ESCAPES, is refused before anything is created, and by
// CheckSchema (for schemas migrated by the application's own tool).
func TestMigrateRefusesAPoolOpenedWithoutTheDSNsSettings(t *testing.T) {
	t.Parallel()
	dbURL, _ := newDatabase(t)
	dsn, err := mysql.DSN(dbURL)
	require.NoError(t, err)
	for _, tc := range []struct {
		name, dsn, want string
	}{
		{"WithoutClientFoundRows", strings.Replace(dsn, "clientFoundRows=true", "clientFoundRows=false", 1), "clientFoundRows is off"},
		{"WithNoBackslashEscapes", dsn + "&sql_mode=%27NO_BACKSLASH_ESCAPES%27", "NO_BACKSLASH_ESCAPES"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.NotEqual(t, dsn, tc.dsn, "the test changed the DSN")
			sqldb, err := sql.Open("mysql", tc.dsn)
			require.NoError(t, err)
			db := bun.NewDB(sqldb, mysqldialect.New())
			t.Cleanup(func() { _ = db.Close() })
			drv, err := wharf.NewDriver(db, wharf.Options{Outbox: wharf.OutboxOptions{TableName: "refused_" + strings.ToLower(tc.name)}})
			require.NoError(t, err)
			err = drv.Migrate(t.Context())
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tc.want)
			var n int
			require.NoError(t, db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?",
				"refused_"+strings.ToLower(tc.name)).Scan(&n))
			require.Zero(t, n, "nothing was created")
			err = drv.CheckSchema(t.Context())
			require.ErrorIs(t, err, ports.ErrInvalidArgument, "CheckSchema refuses the pool too")
			require.ErrorContains(t, err, tc.want)
		})
	}
}
