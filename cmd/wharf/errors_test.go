package main

import (
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/internal/testdb"
)

// TestCommandRefusesBadUsage: what was wrong, and exit status 2.
func TestCommandRefusesBadUsage(t *testing.T) {
	t.Parallel()
	sqliteURL := "file:" + filepath.Join(t.TempDir(), "app.db")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"NoCommand", nil, nil, "Usage:"},
		{"UnknownCommand", nil, []string{"queue", "stats"}, `unknown command "queue stats"`},
		{"GroupWithoutCommand", nil, []string{"outbox"}, "outbox needs a command: stats, list, show, requeue, purge, watch"},
		{"UnknownFlag", nil, []string{"outbox", "stats", "--colour"}, "flag provided but not defined: -colour"},
		{"NoDatabase", nil, []string{"outbox", "stats"}, "no database: pass --db URL or set SQLITE_DB_URL"},
		{"SeveralDatabases", []string{"POSTGRES_DB_URL=postgres://u@h/d", "MYSQL_DB_URL=mysql://u@h/d"}, []string{"migrate", "status"},
			"POSTGRES_DB_URL and MYSQL_DB_URL are all set; pick one with --dialect"},
		{"DialectWithoutItsVariable", []string{"SQLITE_DB_URL=" + sqliteURL}, []string{"migrate", "status", "--dialect", "mysql"},
			"--dialect mysql, but its variable is not set (set: SQLITE_DB_URL)"},
		{"UnknownScheme", nil, []string{"outbox", "stats", "--db", "redis://localhost/0"}, `no wharf provider for URL scheme "redis"`},
		{"RequeueNeedsIDsOrAll", []string{"SQLITE_DB_URL=" + sqliteURL}, []string{"outbox", "requeue"}, "pass the IDs of the dead letters to requeue, or --all"},
		{"RequeueIDsAndAll", []string{"SQLITE_DB_URL=" + sqliteURL}, []string{"outbox", "requeue", "x", "--all"}, "not both"},
		{"LimitOutOfRange", []string{"SQLITE_DB_URL=" + sqliteURL}, []string{"outbox", "list", "--limit", "0"}, "--limit 0 must be within 1..1000"},
		{"BadAge", []string{"SQLITE_DB_URL=" + sqliteURL}, []string{"outbox", "purge", "--older-than", "yesterday"}, `--older-than "yesterday" is neither an age`},
		{"BadFormat", nil, []string{"migrate", "sql", "--dialect", "sqlite", "--format", "flyway"}, `unknown format "flyway"`},
		{"ExportWithoutDialect", nil, []string{"migrate", "sql"}, "pass --dialect sqlite|postgres|mysql"},
		{"NegativeTimeout", nil, []string{"outbox", "stats", "--timeout", "-1s"}, "--timeout -1s is negative"},
		{"BadTableName", []string{"SQLITE_DB_URL=" + sqliteURL}, []string{"outbox", "stats", "--outbox-table", "x;drop"}, "outbox table name"},
		{"SameTableTwice", []string{"SQLITE_DB_URL=" + sqliteURL}, []string{"migrate", "up", "--outbox-table", "t", "--idempotency-table", "t"}, "both named"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := newRunner(t, tc.env...).must(exitUsage, "", tc.args...)
			require.Contains(t, res.stderr, tc.want)
		})
	}
}

func TestCommandPrintsHelpAndVersion(t *testing.T) {
	t.Parallel()
	w := newRunner(t)
	require.Contains(t, w.must(exitOK, "", "help").stdout, "Exit status: 0 done")
	require.Contains(t, w.must(exitOK, "", "outbox", "list", "-h").stderr, "-status string")
	require.Regexp(t, `^wharf \S+ go1\.`, w.must(exitOK, "", "version").stdout)
}

// TestCommandFindsTheDatabase: --db, the dialects' variables (--dialect
// picks among several) and DATABASE_URL.
func TestCommandFindsTheDatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, b := "file:"+filepath.Join(dir, "a.db"), "file:"+filepath.Join(dir, "b.db")
	newRunner(t, "SQLITE_DB_URL="+a).must(exitOK, "", "migrate", "up")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
	}{
		{"Variable", []string{"SQLITE_DB_URL=" + a}, nil, exitOK},
		{"FlagBeatsVariable", []string{"SQLITE_DB_URL=" + a}, []string{"--db", b}, exitPending},
		{"DialectPicksItsVariable", []string{"SQLITE_DB_URL=" + a, "POSTGRES_DB_URL=postgres://u@127.0.0.1:1/d"}, []string{"--dialect", "sqlite"}, exitOK},
		{"DatabaseURL", []string{"DATABASE_URL=" + b}, nil, exitPending},
		{"DialectVariableBeatsDatabaseURL", []string{"DATABASE_URL=" + b, "SQLITE_DB_URL=" + a}, nil, exitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			newRunner(t, tc.env...).must(tc.code, "", append([]string{"migrate", "status"}, tc.args...)...)
		})
	}
}

// TestCommandNeverPrintsThePassword fails to connect in several ways with
// a password in the URL, and checks every output for it, in every
// spelling.
func TestCommandNeverPrintsThePassword(t *testing.T) {
	t.Parallel()
	const secret = "S3cret!pass@word"
	withPassword := func(t *testing.T, raw string) string {
		t.Helper()
		u, err := url.Parse(raw)
		require.NoError(t, err)
		u.User = url.UserPassword(u.User.Username(), secret)
		return u.String()
	}
	for _, tc := range []struct {
		name string
		url  func(t *testing.T) string
		code int
	}{
		{"PostgresNobodyListens", func(t *testing.T) string { return withPassword(t, "postgres://wharf@127.0.0.1:1/app") }, exitError},
		{"MySQLNobodyListens", func(t *testing.T) string { return withPassword(t, "mysql://wharf@127.0.0.1:1/app") }, exitError},
		{"PostgresWrongPassword", func(t *testing.T) string { return withPassword(t, testdb.URL(t, testdb.PostgresEnv)) }, exitError},
		{"MySQLWrongPassword", func(t *testing.T) string { return withPassword(t, testdb.URL(t, testdb.MySQLEnv)) }, exitError},
		{"MalformedPostgresURL", func(*testing.T) string { return "postgres://wharf:" + secret + "@127.0.0.1:bad/app" }, exitUsage},
		{"MalformedMySQLURL", func(*testing.T) string { return "mysql://wharf:" + secret + "@127.0.0.1:5432/app?tls=maybe" }, exitUsage},
		{"PasswordInASQLiteURL", func(*testing.T) string { return "sqlite://wharf:" + secret + "@host/app" }, exitError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			u := tc.url(t)
			for _, env := range [][]string{{"POSTGRES_DB_URL=" + u}, nil} {
				args := []string{"outbox", "stats", "--timeout", "20s"}
				var r *runner
				if env == nil {
					r, args = newRunner(t), append(args, "--db", u)
				} else {
					r = newRunner(t, env...)
					if !strings.HasPrefix(u, "postgres") {
						r = newRunner(t, "DATABASE_URL="+u)
					}
				}
				res := r.must(tc.code, "", args...)
				out := res.stdout + res.stderr
				require.NotEmpty(t, res.stderr, "the error is reported")
				for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret), "S3cret"} {
					require.NotContains(t, out, form, "the password, spelled %q", form)
				}
			}
		})
	}
}
