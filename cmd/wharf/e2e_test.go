package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
)

// The end-to-end tests build the command with go build (with -race when
// the tests run with it) and run it as a user would, on real databases.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = errors.New("the go tool is not on PATH")
			return
		}
		dir, err := os.MkdirTemp("", "wharf-cli-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "wharf")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command(goTool, append(args, ".")...).CombinedOutput()
		if err != nil {
			buildErr = errors.New("go build: " + err.Error() + ": " + string(out))
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// result is one run of the command.
type result struct {
	stdout, stderr string
	code           int
}

// runner runs the built command with an environment of its own.
type runner struct {
	t   *testing.T
	bin string
	env []string
}

func newRunner(t *testing.T, env ...string) *runner {
	t.Helper()
	// Only what the command needs: no *_DB_URL of the developer's shell.
	// GORACE: a -race binary otherwise sleeps a second at exit.
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "GORACE=atexit_sleep_ms=0 halt_on_error=1"}
	return &runner{t: t, bin: binary(t), env: append(base, env...)}
}

// run runs wharf with args, stdin as its standard input.
func (r *runner) run(stdin string, args ...string) result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, args...)
	cmd.Env = r.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	began := time.Now()
	err := cmd.Run()
	if d := time.Since(began); d > time.Second {
		r.t.Logf("SLOW %v: wharf %v", d, args)
	}
	res := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		r.t.Fatalf("run wharf %v: %v", args, err)
	}
	return res
}

// must runs wharf and requires exit status code.
func (r *runner) must(code int, stdin string, args ...string) result {
	r.t.Helper()
	res := r.run(stdin, args...)
	require.Equal(r.t, code, res.code, "wharf %s\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.stdout, res.stderr)
	return res
}

// jsonOf decodes a --json output.
func jsonOf[T any](t *testing.T, res result) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(res.stdout), &v), res.stdout)
	return v
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// database is a fresh database of one dialect.
type database struct {
	name, dialect, url, envVar string
}

func newDatabase(t *testing.T, dialect string) database {
	t.Helper()
	switch dialect {
	case "sqlite":
		return database{name: "SQLite", dialect: dialect, url: "file:" + filepath.Join(t.TempDir(), "app.db"), envVar: "SQLITE_DB_URL"}
	case "postgres":
		return database{name: "PostgreSQL", dialect: dialect, url: serverDB(t, testdb.URL(t, testdb.PostgresEnv), "CREATE DATABASE %s", "DROP DATABASE IF EXISTS %s WITH (FORCE)"), envVar: "POSTGRES_DB_URL"}
	}
	return database{name: "MariaDB", dialect: dialect, url: serverDB(t, testdb.URL(t, testdb.MySQLEnv), "CREATE DATABASE %s", "DROP DATABASE IF EXISTS %s"), envVar: "MYSQL_DB_URL"}
}

// serverDB creates a database on the server of base and returns its URL.
func serverDB(t *testing.T, base, create, drop string) string {
	t.Helper()
	ctx := context.Background()
	admin, err := wharf.Open(ctx, base, wharf.Options{})
	require.NoError(t, err)
	name := randomName("wharf_cli_")
	_, err = admin.DB().ExecContext(ctx, strings.Replace(create, "%s", name, 1))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.DB().ExecContext(context.Background(), strings.Replace(drop, "%s", name, 1))
		_ = admin.Close()
		require.NoError(t, err)
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.Path = "/" + name
	return u.String()
}

// TestCommandEndToEnd migrates a fresh database with the built command,
// then inspects, requeues and purges what the library wrote, checking
// outputs and exit statuses, on each database.
func TestCommandEndToEnd(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db := newDatabase(t, dialect)
			w := newRunner(t, db.envVar+"="+db.url) // the URL from the dialect's variable
			ctx := context.Background()

			// Migrations.
			res := w.must(exitPending, "", "migrate", "status")
			require.Contains(t, res.stdout, "missing; pending: 0001_outbox_create")
			res = w.must(exitOK, "", "migrate", "up")
			migs, err := wharf.Migrations(dialect)
			require.NoError(t, err)
			require.Contains(t, res.stdout, "Applied "+strconv.Itoa(len(migs))+" migration(s)")
			require.Contains(t, w.must(exitOK, "", "migrate", "up").stdout, "Nothing to apply")
			type status struct {
				Dialect string `json:"dialect"`
				Tables  []struct {
					Table   string `json:"table"`
					State   string `json:"state"`
					Version int    `json:"version"`
					Applied []struct {
						ID        string `json:"id"`
						AppliedAt string `json:"applied_at"`
					} `json:"applied"`
				} `json:"tables"`
			}
			st := jsonOf[status](t, w.must(exitOK, "", "migrate", "status", "--json"))
			require.Equal(t, dialect, st.Dialect)
			require.Len(t, st.Tables, 2)
			for _, tb := range st.Tables {
				require.Equal(t, "up_to_date", tb.State, tb.Table)
				require.NotEmpty(t, tb.Applied[0].AppliedAt)
			}

			// What an application wrote, through the library.
			drv, err := wharf.Open(ctx, db.url, wharf.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = drv.Close() })
			ob := drv.Outbox()
			ids, err := ob.Enqueue(ctx,
				ports.OutboxMessage{Topic: "mail.send", Payload: json.RawMessage(`{"to":"a@example.com"}`), MaxAttempts: 1},
				ports.OutboxMessage{Topic: "mail.send", Payload: json.RawMessage(`{"to":"b@example.com"}`), MaxAttempts: 1},
				ports.OutboxMessage{Topic: "audit", Key: "order-1", Payload: json.RawMessage(`{"n":3}`), AvailableAt: time.Now().Add(time.Hour)})
			require.NoError(t, err)
			claimed, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 2, Lease: time.Minute, Topics: []string{"mail.send"}})
			require.NoError(t, err)
			require.Len(t, claimed, 2)
			for _, m := range claimed {
				require.NoError(t, ob.DeadLetter(ctx, m.Claim(), "smtp: 550 mailbox unavailable"))
			}
			store := drv.Idempotency()
			for _, k := range []struct {
				key string
				ttl time.Duration
			}{{"expired", time.Millisecond}, {"live", time.Hour}} {
				r, err := store.Reserve(ctx, ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "orders.create", Key: k.key},
					Fingerprint: "f", TTL: k.ttl})
				require.NoError(t, err)
				require.NoError(t, store.Complete(ctx, r, json.RawMessage(`{"id":1}`)))
			}

			// The outbox.
			type stats struct {
				Ready, Scheduled, Leased, Dead, Total int64
			}
			ost := jsonOf[stats](t, w.must(exitOK, "", "outbox", "stats", "--json"))
			require.Equal(t, stats{Scheduled: 1, Dead: 2, Total: 3}, ost)
			require.Contains(t, w.must(exitOK, "", "outbox", "stats").stdout, "dead          2")
			res = w.must(exitOK, "", "outbox", "list", "--status", "dead")
			require.Contains(t, res.stdout, ids[0])
			require.Contains(t, res.stdout, "smtp: 550 mailbox unavailable")
			require.NotContains(t, res.stdout, ids[2], "only dead letters")
			res = w.must(exitOK, "", "outbox", "show", ids[0])
			require.Contains(t, res.stdout, `"to": "a@example.com"`)
			require.Contains(t, res.stdout, "attempts      1 of 1")
			type record struct {
				ID      string          `json:"id"`
				Status  string          `json:"status"`
				Payload json.RawMessage `json:"payload"`
			}
			rec := jsonOf[record](t, w.must(exitOK, "", "outbox", "show", ids[2], "--json"))
			require.Equal(t, "pending", rec.Status)
			require.JSONEq(t, `{"n":3}`, string(rec.Payload))
			require.Contains(t, w.must(exitNotFound, "", "outbox", "show", "no-such-id").stderr, `message "no-such-id" is not in outbox_messages`)

			res = w.must(exitNotDone, "n\n", "outbox", "requeue", "--all")
			require.Contains(t, res.stderr, "Requeue all 2 dead letters")
			require.Contains(t, res.stderr, "not confirmed")
			require.Equal(t, int64(2), jsonOf[stats](t, w.must(exitOK, "", "outbox", "stats", "--json")).Dead, "a declined requeue changes nothing")
			w.must(exitNotDone, "", "outbox", "requeue", "--all") // no answer at all
			res = w.must(exitOK, "y\n", "outbox", "requeue", "--all")
			require.Contains(t, res.stdout, "Requeued 2 dead letter(s)")
			require.Equal(t, stats{Ready: 2, Scheduled: 1, Total: 3}, jsonOf[stats](t, w.must(exitOK, "", "outbox", "stats", "--json")))
			res = w.must(exitNotFound, "", "outbox", "requeue", ids[0], "nope")
			require.Contains(t, res.stderr, ids[0]+" (pending, not a dead letter), nope (not in the outbox)")

			claimed, err = ob.Claim(ctx, ports.ClaimOptions{Limit: 2, Lease: time.Minute, Topics: []string{"mail.send"}})
			require.NoError(t, err)
			require.NoError(t, ob.DeadLetter(ctx, claimed[0].Claim(), "again"))
			require.NoError(t, ob.DeadLetter(ctx, claimed[1].Claim(), "again"))
			res = w.must(exitOK, "", "outbox", "requeue", claimed[0].ID, "--json")
			require.Equal(t, 1, jsonOf[struct{ Requeued int }](t, res).Requeued)
			res = w.must(exitOK, "", "outbox", "purge", "--older-than", "1h", "--yes")
			require.Contains(t, res.stdout, "Purged 0 dead letter(s)", "the dead letter is younger than an hour")
			res = w.must(exitOK, "", "outbox", "purge", "--older-than", "0s", "--yes", "--json")
			require.Equal(t, 1, jsonOf[struct{ Purged int }](t, res).Purged)
			w.must(exitUsage, "", "outbox", "purge") // --older-than is required

			// watch: two refreshes as JSON lines.
			res = w.must(exitOK, "", "outbox", "watch", "--interval", "100ms", "--count", "2", "--json")
			lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
			require.Len(t, lines, 2)
			for _, l := range lines {
				var s stats
				require.NoError(t, json.Unmarshal([]byte(l), &s))
				require.Equal(t, int64(2), s.Total)
			}
			res = w.must(exitOK, "", "outbox", "watch", "--interval", "100ms", "--count", "1")
			require.Contains(t, res.stdout, "ready=1 scheduled=1 leased=0 dead=0 total=2", "a pipe gets one line per refresh")

			// watch until Ctrl-C: stopping a watch is not a failure.
			watch := exec.Command(w.bin, "outbox", "watch", "--interval", "100ms", "--json")
			watch.Env = w.env
			stdout, err := watch.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, watch.Start())
			first, err := bufio.NewReader(stdout).ReadString('\n')
			require.NoError(t, err)
			require.Contains(t, first, `"total":2`)
			require.NoError(t, watch.Process.Signal(os.Interrupt))
			require.NoError(t, watch.Wait(), "exit status 0 after Ctrl-C")

			// The idempotency store.
			type istats struct {
				Completed, Expired, Total int64
			}
			require.Equal(t, istats{Completed: 1, Expired: 1, Total: 2}, jsonOf[istats](t, w.must(exitOK, "", "idempotency", "stats", "--json")))
			type irec struct {
				Namespace, Key, Status string
			}
			recs := jsonOf[[]irec](t, w.must(exitOK, "", "idempotency", "list", "--expired", "--json"))
			require.Equal(t, []irec{{"orders.create", "expired", "completed"}}, recs)
			require.Contains(t, w.must(exitOK, "", "idempotency", "list", "--namespace", "orders.create").stdout, "live")
			w.must(exitNotDone, "", "idempotency", "purge")
			res = w.must(exitOK, "", "idempotency", "purge", "--yes")
			require.Contains(t, res.stdout, "Purged 1 expired record(s)")
			require.Equal(t, istats{Completed: 1, Total: 1}, jsonOf[istats](t, w.must(exitOK, "", "idempotency", "stats", "--json")))

			// Exports need no database.
			dir := t.TempDir()
			w.must(exitOK, "", "migrate", "sql", "--format", "goose", "--out", dir)
			for _, m := range migs {
				b, err := os.ReadFile(filepath.Join(dir, m.String()[:5]+"wharf_"+m.String()[5:]+".sql"))
				require.NoError(t, err)
				require.True(t, strings.HasPrefix(string(b), "-- +goose Up"))
			}
			require.Contains(t, w.must(exitOK, "", "migrate", "sql", "--format", "goose", "--out", dir).stderr, "unchanged", "the same export again")
			res = w.must(exitOK, "", "migrate", "sql", "--dialect", dialect, "--format", "plain", "--outbox-table", "ops_outbox")
			require.Contains(t, res.stdout, "ops_outbox")
			w.must(exitOK, "", "migrate", "sql", "--format", "plain", "--out", dir)
			res = w.must(exitUsage, "", "migrate", "sql", "--format", "plain", "--out", dir, "--outbox-table", "ops_outbox")
			require.Contains(t, res.stderr, "exists and differs; pass --force")
			w.must(exitOK, "", "migrate", "sql", "--format", "plain", "--out", dir, "--outbox-table", "ops_outbox", "--force")

			// Table names from flags: a second table set in the same database.
			custom := []string{"--outbox-table", "ops_outbox", "--idempotency-table", "ops_idem"}
			w.must(exitPending, "", append([]string{"migrate", "status"}, custom...)...)
			w.must(exitOK, "", append([]string{"migrate", "up"}, custom...)...)
			w.must(exitOK, "", append([]string{"outbox", "stats"}, custom...)...)
			w.must(exitOK, "", "migrate", "status")

			// A schema newer than this wharf.
			_, err = drv.DB().ExecContext(ctx, "INSERT INTO wharf_schema_migrations (table_name, version, component, name, applied_at) VALUES (?, ?, ?, ?, ?)",
				"outbox_messages", 99, "outbox", "future", core.FormatTime(time.Now()))
			require.NoError(t, err)
			res = w.must(exitTooNew, "", "migrate", "up")
			require.Contains(t, res.stderr, "schema version 99")
			w.must(exitTooNew, "", "migrate", "status")
			require.Contains(t, w.must(exitOK, "", "outbox", "stats").stderr, "warning:", "other commands warn and go on")
		})
	}
}
