package opse2e

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
)

// gooseUp returns the Up section of a goose file, checking the
// annotations goose reads: -- +goose Up first, and NO TRANSACTION where
// the dialect commits DDL on its own.
func gooseUp(t testing.TB, d dialect, content string) string {
	t.Helper()
	require.True(t, strings.HasPrefix(content, "-- +goose Up\n"), "a goose file starts with its Up annotation")
	require.Equal(t, d.id == "mysql", strings.Contains(content, "-- +goose NO TRANSACTION\n"))
	up, _, _ := strings.Cut(content, "-- +goose Down")
	return up
}

// requireUsable checks a database migrated by other means: the schema is
// this code's, Migrate has nothing left to do, and the tables work.
func requireUsable(t *testing.T, drv *wharf.Driver) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, drv.CheckSchema(ctx))
	st, err := drv.MigrationStatus(ctx)
	require.NoError(t, err)
	for _, tv := range st.Tables {
		require.Equal(t, tv.Latest, tv.Version, tv.Table)
		require.NotEmpty(t, tv.Applied, tv.Table)
		require.False(t, tv.Applied[0].AppliedAt.IsZero(), "the script recorded when it ran, in wharf's time format")
	}
	applied, err := drv.ApplyMigrations(ctx)
	require.NoError(t, err)
	require.Empty(t, applied, "Migrate finds everything applied")
	_, err = drv.Outbox().Enqueue(ctx, ports.OutboxMessage{Topic: "t", Key: "k", Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	msgs, err := drv.Outbox().Claim(ctx, ports.ClaimOptions{Limit: 1, Lease: 60e9})
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	r, err := drv.Idempotency().Reserve(ctx, ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "n", Key: "k"}, Fingerprint: "f"})
	require.NoError(t, err)
	require.Equal(t, ports.Reserved, r.Status)
}

// TestExportedMigrationsApplyAsPlainSQL renders the migrations in each
// format, applies them statement by statement (what goose,
// golang-migrate or a SQL client would send) to an empty database, and
// checks that the result is the schema Migrate makes, recorded.
func TestExportedMigrationsApplyAsPlainSQL(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d dialect) {
		for _, format := range []wharf.MigrationFormat{wharf.FormatPlain, wharf.FormatGoose, wharf.FormatGolangMigrate, wharf.FormatBun} {
			t.Run(string(format), func(t *testing.T) {
				t.Parallel()
				files, err := wharf.ExportMigrations(wharf.ExportOptions{Dialect: d.id, Format: format})
				require.NoError(t, err)
				migs := allMigrations(t, d)
				if format == wharf.FormatPlain {
					require.Len(t, files, 1)
				} else {
					require.Len(t, files, len(migs), "one file per migration")
				}
				drv := openDriver(t, d, d.newDB(t), wharf.Options{})
				for _, f := range files {
					text := f.Content
					switch format {
					case wharf.FormatGoose:
						text = gooseUp(t, d, text)
					case wharf.FormatGolangMigrate, wharf.FormatBun:
						require.True(t, strings.HasSuffix(f.Name, ".up.sql"), f.Name)
					}
					execScript(t, drv, text)
				}
				requireUsable(t, drv)
			})
		}
		t.Run("SinceTheLastApplied", func(t *testing.T) {
			t.Parallel()
			// The first two files (goose), then the rest as a plain script
			// exported --since 2: a database that follows wharf's releases.
			migs := allMigrations(t, d)
			files, err := wharf.ExportMigrations(wharf.ExportOptions{Dialect: d.id, Format: wharf.FormatGoose})
			require.NoError(t, err)
			drv := openDriver(t, d, d.newDB(t), wharf.Options{})
			for _, f := range files[:2] {
				execScript(t, drv, gooseUp(t, d, f.Content))
			}
			rest, err := wharf.ExportMigrations(wharf.ExportOptions{Dialect: d.id, Since: 2})
			require.NoError(t, err)
			if len(migs) == 2 {
				require.Empty(t, rest, "nothing above the latest")
			} else {
				require.Len(t, rest, 1)
				require.NotContains(t, rest[0].Content, "_create", "only the migrations above 2")
				execScript(t, drv, rest[0].Content)
			}
			requireUsable(t, drv)
		})
		t.Run("CustomTableNames", func(t *testing.T) {
			t.Parallel()
			opts := wharf.Options{Outbox: wharf.OutboxOptions{TableName: "ops_outbox"}, Idempotency: wharf.IdempotencyOptions{TableName: "ops_idem"},
				Migrations: wharf.MigrationOptions{TableName: "ops_versions"}}
			files, err := wharf.ExportMigrations(wharf.ExportOptions{Dialect: d.id, Options: opts})
			require.NoError(t, err)
			require.NotContains(t, files[0].Content, "outbox_messages")
			drv := openDriver(t, d, d.newDB(t), opts)
			execScript(t, drv, files[0].Content)
			requireUsable(t, drv)
		})
	})
}

// TestPlainExportRunsInTheDatabaseClient pipes the plain script to psql,
// mysql and sqlite3, as an operator would.
func TestPlainExportRunsInTheDatabaseClient(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d dialect) {
		dbURL := d.newDB(t)
		files, err := wharf.ExportMigrations(wharf.ExportOptions{Dialect: d.id})
		require.NoError(t, err)
		script := filepath.Join(t.TempDir(), files[0].Name)
		require.NoError(t, os.WriteFile(script, []byte(files[0].Content), 0o644))
		var cmd *exec.Cmd
		switch d.id {
		case "postgres":
			cmd = exec.Command(client(t, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", script, dbURL)
		case "mysql":
			u, err := url.Parse(dbURL)
			require.NoError(t, err)
			pass, _ := u.User.Password()
			cmd = exec.Command(client(t, "mariadb", "mysql"), "--protocol=TCP", "-h", u.Hostname(), "-P", u.Port(), "-u", u.User.Username(),
				strings.TrimPrefix(u.Path, "/"))
			cmd.Env = append(os.Environ(), "MYSQL_PWD="+pass)
		case "sqlite":
			cmd = exec.Command(client(t, "sqlite3"), strings.TrimPrefix(dbURL, "file:"))
		}
		f, err := os.Open(script)
		require.NoError(t, err)
		defer f.Close()
		cmd.Stdin = f
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s: %s", cmd.Path, out)
		requireUsable(t, openDriver(t, d, dbURL, wharf.Options{}))
	})
}

// client finds a database client: scripts/testdb.sh installs it with its
// server, so under CI a missing one fails the test.
func client(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := strings.Join(names, " or ") + " is not installed"
	if testdb.InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}
