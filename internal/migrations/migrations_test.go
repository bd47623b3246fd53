package migrations_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/internal/migrations"
	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
	_ "github.com/wharf-go/wharf/providers/mysql"
	_ "github.com/wharf-go/wharf/providers/postgres"
	_ "github.com/wharf-go/wharf/providers/sqlite"
)

// fakeDialect renders files of its own; it has no database.
type fakeDialect struct {
	files fs.FS
	tx    bool
}

func (fakeDialect) Name() string               { return "fake" }
func (fakeDialect) Quote(s string) string      { return `"` + s + `"` }
func (fakeDialect) Translate(err error) error  { return err }
func (fakeDialect) Gate(bun.IDB) *sqlbase.Gate { return nil }
func (d fakeDialect) MigrationFiles() fs.FS    { return d.files }
func (fakeDialect) NowSQL() string             { return "NOW()" }
func (d fakeDialect) TransactionalDDL() bool   { return d.tx }
func (fakeDialect) TableExists(context.Context, bun.IDB, sqlbase.Names) (bool, error) {
	return false, nil
}

func file(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }

// validFiles are a small, valid set.
func validFiles() fstest.MapFS {
	return fstest.MapFS{
		"versions.sql":                file("CREATE TABLE IF NOT EXISTS {{.Table}} (table_name TEXT);\n"),
		"0001_outbox_create.sql":      file("-- the outbox\nCREATE TABLE IF NOT EXISTS {{.Table}} (id TEXT);\nCREATE INDEX IF NOT EXISTS {{.Schema}}{{.Index \"_claim_idx\"}} ON {{.Base}} (id);\n"),
		"0002_idempotency_create.sql": file("CREATE TABLE IF NOT EXISTS {{.Table}} (k TEXT);\n"),
		"0003_outbox_more.sql":        file("ALTER TABLE {{.Table}} ADD COLUMN x INT;\n"),
	}
}

func tables(t *testing.T, outbox, idem, versions string) migrations.Tables {
	t.Helper()
	tb, err := migrations.NewTables(fakeDialect{}, outbox, idem, versions)
	require.NoError(t, err)
	return tb
}

func TestSplitReturnsTheStatementsOfAFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"OneStatement", "SELECT 1;\n", []string{"SELECT 1"}},
		{"CommentLinesAreDropped", "-- why;\nCREATE TABLE t (\n\t-- a column\n\tid INT\n);\n", []string{"CREATE TABLE t (\n\tid INT\n)"}},
		{"SemicolonInsideALineDoesNotSplit", "INSERT INTO t VALUES ('a;b');\nSELECT 2;", []string{"INSERT INTO t VALUES ('a;b')", "SELECT 2"}},
		{"TrailingStatementWithoutSemicolon", "SELECT 1;\nSELECT 2", []string{"SELECT 1", "SELECT 2"}},
		{"TrailingSpaceAfterSemicolon", "SELECT 1;  \r\n", []string{"SELECT 1"}},
		{"OnlyComments", "-- nothing\n\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, migrations.Split(tc.text))
		})
	}
}

func TestParseRefusesBadFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		change func(fstest.MapFS)
		want   string
	}{
		{"BadName", func(m fstest.MapFS) { m["0004_queue_create.sql"] = file("SELECT 1;") }, "0004_queue_create.sql is not named"},
		{"Gap", func(m fstest.MapFS) { m["0005_outbox_x.sql"] = file("SELECT 1;") }, "0005_outbox_x.sql is number 5, expected 4"},
		{"Repeat", func(m fstest.MapFS) { m["0003_idempotency_x.sql"] = file("SELECT 1;") }, "expected 4"},
		{"NoVersionsFile", func(m fstest.MapFS) { delete(m, "versions.sql") }, "no versions.sql"},
		{"TemplateError", func(m fstest.MapFS) { m["0003_outbox_more.sql"] = file("{{.Table") }, "0003_outbox_more.sql"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			files := validFiles()
			tc.change(files)
			_, err := migrations.NewSet(fakeDialect{files: files}).Migrations()
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestStepsRenderEachMigrationForItsTable(t *testing.T) {
	t.Parallel()
	set := migrations.NewSet(fakeDialect{files: validFiles()})
	long := strings.Repeat("o", 63)
	steps, err := set.Steps(tables(t, "app."+long, "idem", ""), 0)
	require.NoError(t, err)
	require.Len(t, steps, 3)
	require.Equal(t, []string{"0001_outbox_create", "0002_idempotency_create", "0003_outbox_more"},
		[]string{steps[0].ID(), steps[1].ID(), steps[2].ID()})
	n := steps[0].Table
	require.Equal(t, []string{
		`CREATE TABLE IF NOT EXISTS "app"."` + long + `" (id TEXT)`,
		`CREATE INDEX IF NOT EXISTS "app"."` + n.Index("_claim_idx") + `" ON "` + long + `" (id)`,
	}, steps[0].Statements, "the outbox's names, the derived index name and the schema")
	require.LessOrEqual(t, len(n.Index("_claim_idx")), 63, "a long table's index name is shortened")
	require.Contains(t, steps[0].SQL, "-- the outbox", "the rendered file keeps its comments")
	require.Equal(t, []string{`CREATE TABLE IF NOT EXISTS "idem" (k TEXT)`}, steps[1].Statements)

	since, err := set.Steps(tables(t, "o", "i", ""), 2)
	require.NoError(t, err)
	require.Len(t, since, 1)
	require.Equal(t, 3, since[0].Version, "Since skips what the database has")

	require.Equal(t, 3, set.Latest(migrations.Outbox))
	require.Equal(t, 2, set.Latest(migrations.Idempotency))
}

func TestNewTablesRefusesSharedOrInvalidNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, outbox, idem, versions, want string
	}{
		{"SameOutboxAndIdempotency", "t", "T", "", `the outbox table and the idempotency table are both named "T"`},
		{"VersionTableIsTheOutbox", "wharf_schema_migrations", "i", "", "schema version table are both named"},
		{"InvalidVersionTable", "o", "i", "v;drop", "schema version table name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := migrations.NewTables(fakeDialect{}, tc.outbox, tc.idem, tc.versions)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestExportLaysOutEachFormat(t *testing.T) {
	t.Parallel()
	tb := tables(t, "outbox_messages", "idempotency_records", "")
	export := func(t *testing.T, tx bool, o migrations.ExportOptions) []migrations.File {
		t.Helper()
		files, err := migrations.NewSet(fakeDialect{files: validFiles(), tx: tx}).Export(tb, o)
		require.NoError(t, err)
		return files
	}
	t.Run("PlainIsOneScriptInATransaction", func(t *testing.T) {
		t.Parallel()
		files := export(t, true, migrations.ExportOptions{Format: migrations.Plain})
		require.Len(t, files, 1)
		require.Equal(t, "wharf_fake.sql", files[0].Name)
		stmts := migrations.Split(files[0].Content)
		require.Equal(t, "BEGIN", stmts[0])
		require.Equal(t, "COMMIT", stmts[len(stmts)-1])
		require.Contains(t, stmts, `INSERT INTO "wharf_schema_migrations" (table_name, version, component, name, applied_at) VALUES ('outbox_messages', 3, 'outbox', 'more', NOW())`)
	})
	t.Run("PlainWithoutTransactionalDDL", func(t *testing.T) {
		t.Parallel()
		stmts := migrations.Split(export(t, false, migrations.ExportOptions{})[0].Content)
		require.NotContains(t, stmts, "BEGIN")
	})
	t.Run("GooseNamesAndAnnotatesEachFile", func(t *testing.T) {
		t.Parallel()
		files := export(t, false, migrations.ExportOptions{Format: migrations.Goose, Since: 1, FirstVersion: 42})
		require.Equal(t, []string{"0042_wharf_idempotency_create.sql", "0043_wharf_outbox_more.sql"}, []string{files[0].Name, files[1].Name})
		require.True(t, strings.HasPrefix(files[1].Content, "-- +goose Up\n-- +goose NO TRANSACTION\n"), files[1].Content)
		require.Contains(t, files[1].Content, `VALUES ('outbox_messages', 3, 'outbox', 'more', NOW());`,
			"the file records wharf's own number, whatever the file is numbered")
	})
	t.Run("GolangMigrateWritesUpFiles", func(t *testing.T) {
		t.Parallel()
		files := export(t, true, migrations.ExportOptions{Format: migrations.GolangMigrate})
		require.Len(t, files, 3)
		require.Equal(t, "0001_wharf_outbox_create.up.sql", files[0].Name)
		require.NotContains(t, files[0].Content, "goose")
	})
	t.Run("BunSplitsStatements", func(t *testing.T) {
		t.Parallel()
		files := export(t, true, migrations.ExportOptions{Format: migrations.Bun, Since: 2, FirstVersion: 20250101000000})
		require.Len(t, files, 1)
		require.Equal(t, "20250101000000_wharf_outbox_more.tx.up.sql", files[0].Name)
		chunks := strings.Split(files[0].Content, "\n--bun:split\n")
		require.Len(t, chunks, 3, "the version table, the migration's statement, the version row")
		require.True(t, strings.HasPrefix(chunks[0], "-- wharf migration 0003_outbox_more"), "the header shares the first chunk")
		require.Equal(t, `ALTER TABLE "outbox_messages" ADD COLUMN x INT;`, chunks[1])
		noTx := export(t, false, migrations.ExportOptions{Format: migrations.Bun})
		require.Equal(t, "0001_wharf_outbox_create.up.sql", noTx[0].Name, "no .tx where DDL cannot be rolled back")
	})
	t.Run("NothingAboveSince", func(t *testing.T) {
		t.Parallel()
		require.Empty(t, export(t, true, migrations.ExportOptions{Since: 3}))
	})
	t.Run("UnknownFormat", func(t *testing.T) {
		t.Parallel()
		_, err := migrations.NewSet(fakeDialect{files: validFiles()}).Export(tb, migrations.ExportOptions{Format: "flyway"})
		require.ErrorIs(t, err, ports.ErrInvalidArgument)
		require.ErrorContains(t, err, `unknown format "flyway"`)
	})
}

// TestEmbeddedMigrationsKeepTheirContract checks every provider's files:
// they parse, and the first migration of each component only creates
// what does not exist, so that it adopts tables created before versioned
// migrations (and, on MySQL, can run again).
func TestEmbeddedMigrationsKeepTheirContract(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e, err := dialect.ByName(name)
			require.NoError(t, err)
			migs, err := e.Migrations.Migrations()
			require.NoError(t, err)
			require.NotEmpty(t, migs)
			tb, err := migrations.NewTables(e.Migrations.Dialect(), "outbox_messages", "idempotency_records", "")
			require.NoError(t, err)
			steps, err := e.Migrations.Steps(tb, 0)
			require.NoError(t, err)
			first := map[migrations.Component]bool{}
			for _, st := range steps {
				require.NotEmpty(t, st.Statements, st.File)
				if first[st.Component] {
					continue
				}
				first[st.Component] = true
				for _, s := range st.Statements {
					require.Regexp(t, `^CREATE (TABLE|INDEX) IF NOT EXISTS `, s, "%s adopts existing tables", st.File)
				}
			}
			require.True(t, first[migrations.Outbox] && first[migrations.Idempotency], "both components have migrations")
			vt, err := e.Migrations.VersionTableSQL(tb)
			require.NoError(t, err)
			require.Contains(t, vt, "CREATE TABLE IF NOT EXISTS "+e.Migrations.Dialect().Quote("wharf_schema_migrations"))
		})
	}
}
