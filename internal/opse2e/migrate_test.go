package opse2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	idialect "github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/internal/migrations"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
)

// seeded is what seed wrote through a driver.
type seeded struct {
	pending, dead []string // message IDs
	key           ports.IdempotencyKey
	fingerprint   string
}

// seed writes messages (two pending, one keyed; one dead letter) and a
// completed idempotency record through drv.
func seed(t *testing.T, drv *wharf.Driver) seeded {
	t.Helper()
	ctx := context.Background()
	ob := drv.Outbox()
	ids, err := ob.Enqueue(ctx,
		ports.OutboxMessage{Topic: "ops.dead", Payload: json.RawMessage(`{"n":0}`)},
		ports.OutboxMessage{Topic: "ops.a", Key: "k1", Payload: json.RawMessage(`{"n":1}`), Headers: map[string]string{"h": "v"}},
		ports.OutboxMessage{Topic: "ops.b", Payload: json.RawMessage(`{"n":2}`)})
	require.NoError(t, err)
	claimed, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 1, Lease: time.Minute, Topics: []string{"ops.dead"}})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.NoError(t, ob.DeadLetter(ctx, claimed[0].Claim(), "boom"))
	s := seeded{pending: ids[1:], dead: ids[:1], key: ports.IdempotencyKey{Namespace: "orders", Key: "o-1"}, fingerprint: "fp"}
	r, err := drv.Idempotency().Reserve(ctx, ports.ReserveRequest{IdempotencyKey: s.key, Fingerprint: s.fingerprint})
	require.NoError(t, err)
	require.Equal(t, ports.Reserved, r.Status)
	require.NoError(t, drv.Idempotency().Complete(ctx, r, json.RawMessage(`{"order":7}`)))
	return s
}

// requireSeeded checks that what seed wrote is intact and usable through
// drv: the dead letter, the pending messages in order, the stored result.
func requireSeeded(t *testing.T, drv *wharf.Driver, s seeded) {
	t.Helper()
	ctx := context.Background()
	ob := drv.Outbox()
	dead, err := ob.List(ctx, ports.OutboxFilter{Status: ports.StatusDead})
	require.NoError(t, err)
	require.Len(t, dead, 1)
	require.Equal(t, s.dead[0], dead[0].ID)
	require.Equal(t, "boom", dead[0].LastError)
	claimed, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute})
	require.NoError(t, err)
	ids := make([]string, len(claimed))
	for i, m := range claimed {
		ids[i] = m.ID
	}
	require.Equal(t, s.pending, ids, "the pending messages survive, in order")
	require.Equal(t, map[string]string{"h": "v"}, claimed[0].Headers)
	require.JSONEq(t, `{"n":1}`, string(claimed[0].Payload))
	r, err := drv.Idempotency().Reserve(ctx, ports.ReserveRequest{IdempotencyKey: s.key, Fingerprint: s.fingerprint})
	require.NoError(t, err)
	require.Equal(t, ports.Replay, r.Status, "the stored result survives")
	require.JSONEq(t, `{"order":7}`, string(r.Result))
}

// allMigrations lists d's migrations.
func allMigrations(t testing.TB, d dialect) []wharf.Migration {
	t.Helper()
	migs, err := wharf.Migrations(d.id)
	require.NoError(t, err)
	return migs
}

// versionRows counts the version table's rows of each table.
func versionRows(t testing.TB, drv *wharf.Driver, table string) map[string]int {
	t.Helper()
	rows, err := drv.DB().QueryContext(context.Background(), "SELECT table_name, COUNT(*) FROM "+table+" GROUP BY table_name")
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			name string
			n    int
		)
		require.NoError(t, rows.Scan(&name, &n))
		out[name] = n
	}
	require.NoError(t, rows.Err())
	return out
}

// requireFillfactor checks PostgreSQL's outbox storage option.
func requireFillfactor(t testing.TB, drv *wharf.Driver, table string) {
	t.Helper()
	var opts []string
	require.NoError(t, drv.DB().NewRaw("SELECT unnest(reloptions) FROM pg_class WHERE oid = ?::regclass", table).Scan(context.Background(), &opts))
	require.Contains(t, opts, "fillfactor=70", "the outbox table of %s leaves room for HOT updates", table)
}

func TestMigrateAdoptsTablesCreatedBeforeVersioning(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d dialect) {
		variants := []bool{false}
		if d.id == "postgres" {
			variants = []bool{false, true} // before and after commit 1cb025e added the fillfactor
		}
		for _, ff := range variants {
			t.Run(fmt.Sprintf("Fillfactor%v", ff), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				drv := openDriver(t, d, d.newDB(t), wharf.Options{})
				execScript(t, drv, legacyDDL(t, d, ff))
				s := seed(t, drv)

				st, err := drv.MigrationStatus(ctx)
				require.NoError(t, err)
				for _, tv := range st.Tables {
					require.True(t, tv.Exists, tv.Table)
					require.Zero(t, tv.Version, tv.Table)
					require.ErrorIs(t, tv.Err(), wharf.ErrSchemaOutdated)
					require.ErrorContains(t, tv.Err(), "no schema version recorded")
				}
				require.ErrorIs(t, drv.CheckSchema(ctx), wharf.ErrSchemaOutdated, "an unversioned schema is not this code's")

				applied, err := drv.ApplyMigrations(ctx)
				require.NoError(t, err)
				migs := allMigrations(t, d)
				require.Len(t, applied, len(migs), "every migration is recorded")
				firstOf := map[string]bool{}
				for i, a := range applied {
					require.Equal(t, migs[i], a.Migration)
					require.Equal(t, !firstOf[a.Component], a.Adopted, "%s: only a table's first migration adopts it", a)
					firstOf[a.Component] = true
				}
				require.NoError(t, drv.CheckSchema(ctx))
				requireSeeded(t, drv, s)
				if d.id == "postgres" {
					requireFillfactor(t, drv, "outbox_messages")
				}
				again, err := drv.ApplyMigrations(ctx)
				require.NoError(t, err)
				require.Empty(t, again, "a second Migrate applies nothing")
			})
		}
	})
}

// withFiles is a dialect's migration strategy over other files.
type withFiles struct {
	migrations.Dialect
	files fs.FS
}

func (w withFiles) MigrationFiles() fs.FS { return w.files }

// upgradeFiles are a test migration of each component, numbered after the
// dialect's own: an added column with a default, and an index on it.
var upgradeFiles = map[string][2]string{
	"sqlite": {
		"ALTER TABLE {{.Table}} ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;\nCREATE INDEX {{.Schema}}{{.Index \"_priority_idx\"}} ON {{.Base}} (priority);\n",
		"ALTER TABLE {{.Table}} ADD COLUMN note TEXT;\n",
	},
	"postgres": {
		"ALTER TABLE {{.Table}} ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;\nCREATE INDEX {{.Index \"_priority_idx\"}} ON {{.Table}} (priority);\n",
		"ALTER TABLE {{.Table}} ADD COLUMN note TEXT;\n",
	},
	"mysql": {
		"ALTER TABLE {{.Table}} ADD COLUMN priority INT NOT NULL DEFAULT 0, ADD INDEX priority_idx (priority);\n",
		"ALTER TABLE {{.Table}} ADD COLUMN note LONGTEXT NULL;\n",
	},
}

// TestMigrateUpgradesADatabaseWithData brings a database at version 1
// (each table's first migration), holding data, to the dialect's latest
// migrations plus two more (a column with an index, a column), through
// the dialect's own Migrate, and checks that the data is intact and the
// driver still works on the upgraded tables.
func TestMigrateUpgradesADatabaseWithData(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d dialect) {
		ctx := context.Background()
		drv := openDriver(t, d, d.newDB(t), wharf.Options{})
		e, err := idialect.ByName(d.id)
		require.NoError(t, err)
		runner, err := e.New(drv.DB(), idialect.Config{Logger: slog.Default()})
		require.NoError(t, err)
		t.Cleanup(func() { _ = runner.Close() })
		real := e.Migrations.Dialect()
		tb, err := migrations.NewTables(real, "outbox_messages", "idempotency_records", "")
		require.NoError(t, err)
		apply := func(set *migrations.Set) []migrations.Applied {
			var applied []migrations.Applied
			require.NoError(t, runner.Migrate(ctx, drv.DB(), func(ctx context.Context, conn bun.IDB) error {
				var err error
				applied, err = set.Apply(ctx, conn, tb, core.FormatTime(time.Now()))
				return err
			}))
			return applied
		}

		own, err := e.Migrations.Migrations()
		require.NoError(t, err)
		v1 := fstest.MapFS{}
		all := fstest.MapFS{}
		first := map[migrations.Component]bool{}
		for _, name := range fsNames(t, real.MigrationFiles()) {
			b, err := fs.ReadFile(real.MigrationFiles(), name)
			require.NoError(t, err)
			all[name] = &fstest.MapFile{Data: b}
			if name == migrations.VersionsFile {
				v1[name] = &fstest.MapFile{Data: b}
			}
		}
		for _, m := range own {
			if !first[m.Component] {
				first[m.Component] = true
				v1[m.File] = all[m.File]
			}
		}
		n := len(own)
		all[fmt.Sprintf("%04d_outbox_priority.sql", n+1)] = &fstest.MapFile{Data: []byte(upgradeFiles[d.id][0])}
		all[fmt.Sprintf("%04d_idempotency_note.sql", n+2)] = &fstest.MapFile{Data: []byte(upgradeFiles[d.id][1])}

		applied := apply(migrations.NewSet(withFiles{real, v1}))
		require.Len(t, applied, 2, "version 1: each table's first migration")
		s := seed(t, drv)

		applied = apply(migrations.NewSet(withFiles{real, all}))
		var got []string
		for _, a := range applied {
			require.False(t, a.Adopted)
			got = append(got, fmt.Sprintf("%d_%s_%s", a.Version, a.Component, a.Name))
		}
		var want []string
		for _, m := range own {
			if v1[m.File] == nil {
				want = append(want, fmt.Sprintf("%d_%s_%s", m.Version, m.Component, m.Name))
			}
		}
		want = append(want, fmt.Sprintf("%d_outbox_priority", n+1), fmt.Sprintf("%d_idempotency_note", n+2))
		require.Equal(t, want, got, "the pending migrations, in order")
		require.Empty(t, apply(migrations.NewSet(withFiles{real, all})), "then nothing is pending")

		var priorities []int
		require.NoError(t, drv.DB().NewRaw("SELECT priority FROM outbox_messages").Scan(ctx, &priorities))
		require.Equal(t, []int{0, 0, 0}, priorities, "existing rows get the new column's default")
		requireSeeded(t, drv, s)
		_, err = drv.Outbox().Enqueue(ctx, ports.OutboxMessage{Topic: "ops.after", Payload: json.RawMessage(`{}`)})
		require.NoError(t, err, "the driver writes to the upgraded table")
		if d.id == "postgres" {
			requireFillfactor(t, drv, "outbox_messages")
		}
		// The driver's own code knows fewer migrations than the database
		// now records: it refuses to migrate it.
		require.ErrorIs(t, drv.Migrate(ctx), wharf.ErrSchemaTooNew)
	})
}

func fsNames(t testing.TB, fsys fs.FS) []string {
	t.Helper()
	entries, err := fs.ReadDir(fsys, ".")
	require.NoError(t, err)
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// TestMigrateFromFourProcessesAtOnce starts four processes on one database
// and lets them migrate at the same moment: every one succeeds, and each
// migration is applied and recorded exactly once.
func TestMigrateFromFourProcessesAtOnce(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d dialect) {
		for _, legacy := range []bool{false, true} {
			t.Run(map[bool]string{false: "Empty", true: "LegacyTablesWithData"}[legacy], func(t *testing.T) {
				t.Parallel()
				url := d.newDB(t)
				migrateAtOnce(t, d, url, legacy)
			})
		}
	})
}

// TestMigrateFromFourProcessesThroughPgBouncer: the advisory lock is
// transaction-level, so it serialises migrations through a
// transaction-pooling proxy, where a session lock would be held by
// whichever server connection the proxy picked.
func TestMigrateFromFourProcessesThroughPgBouncer(t *testing.T) {
	t.Parallel()
	d, _ := dialectByID("postgres")
	url := postgresDBOn(t, testdb.URL(t, testdb.PgBouncerEnv))
	migrateAtOnce(t, d, url, false)
}

func migrateAtOnce(t *testing.T, d dialect, url string, legacy bool) {
	t.Helper()
	ctx := context.Background()
	drv := openDriver(t, d, url, wharf.Options{})
	var s seeded
	if legacy {
		execScript(t, drv, legacyDDL(t, d, false))
		s = seed(t, drv)
	}
	const n = 4
	children := make([]*child, n)
	for i := range children {
		children[i] = startMigrator(t, d, url)
	}
	for _, c := range children { // all connected: start them together
		_, err := c.stdin.WriteString("GO\n")
		require.NoError(t, err)
	}
	total := 0
	for i, c := range children {
		line, err := c.result(t)
		require.NoError(t, err, "child %d: %s; stderr: %s", i, line, c.buf.String())
		var applied int
		_, err = fmt.Sscanf(line, lineApplied+" %d", &applied)
		require.NoError(t, err, "child %d printed %q", i, line)
		total += applied
	}
	migs := allMigrations(t, d)
	require.Equal(t, len(migs), total, "each migration applied by exactly one process")
	rows := versionRows(t, drv, wharf.DefaultMigrationsTable)
	require.Equal(t, map[string]int{"outbox_messages": countOf(migs, "outbox"), "idempotency_records": countOf(migs, "idempotency")}, rows)
	require.NoError(t, drv.CheckSchema(ctx))
	if legacy {
		requireSeeded(t, drv, s)
	}
}

func countOf(migs []wharf.Migration, component string) int {
	n := 0
	for _, m := range migs {
		if m.Component == component {
			n++
		}
	}
	return n
}

// TestMigrateRefusesANewerSchema: a database on which a newer wharf
// recorded a migration this code does not know is refused, before any
// change, by Migrate and by CheckSchema.
func TestMigrateRefusesANewerSchema(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d dialect) {
		ctx := context.Background()
		future := func(t *testing.T, drv *wharf.Driver, table, component string) {
			t.Helper()
			_, err := drv.DB().ExecContext(ctx, "INSERT INTO "+wharf.DefaultMigrationsTable+
				" (table_name, version, component, name, applied_at) VALUES (?, ?, ?, ?, ?)",
				table, 99, component, "from_the_future", core.FormatTime(time.Now()))
			require.NoError(t, err)
		}
		t.Run("Migrated", func(t *testing.T) {
			t.Parallel()
			drv := openDriver(t, d, d.newDB(t), wharf.Options{})
			require.NoError(t, drv.Migrate(ctx))
			future(t, drv, "outbox_messages", "outbox")
			err := drv.Migrate(ctx)
			require.ErrorIs(t, err, wharf.ErrSchemaTooNew)
			require.ErrorContains(t, err, "table outbox_messages is at schema version 99")
			require.ErrorIs(t, drv.CheckSchema(ctx), wharf.ErrSchemaTooNew)
			st, err := drv.MigrationStatus(ctx)
			require.NoError(t, err)
			require.ErrorIs(t, st.Tables[0].Err(), wharf.ErrSchemaTooNew)
			require.NoError(t, st.Tables[1].Err(), "the idempotency table is this code's")
			require.ErrorIs(t, st.Err(), wharf.ErrSchemaTooNew)
		})
		t.Run("NothingCreatedBeforeTheRefusal", func(t *testing.T) {
			t.Parallel()
			drv := openDriver(t, d, d.newDB(t), wharf.Options{})
			// Only the version table exists, recording the idempotency
			// table at a future version.
			require.NoError(t, drv.Migrate(ctx))
			for _, table := range []string{"outbox_messages", "idempotency_records"} {
				_, err := drv.DB().ExecContext(ctx, "DROP TABLE "+table)
				require.NoError(t, err)
			}
			_, err := drv.DB().ExecContext(ctx, "DELETE FROM "+wharf.DefaultMigrationsTable)
			require.NoError(t, err)
			future(t, drv, "idempotency_records", "idempotency")
			require.ErrorIs(t, drv.Migrate(ctx), wharf.ErrSchemaTooNew)
			st, err := drv.MigrationStatus(ctx)
			require.NoError(t, err)
			require.False(t, st.Tables[0].Exists, "the outbox table was not created")
			require.Empty(t, st.Tables[0].Applied, "nothing was recorded")
		})
	})
}

// TestTableSetsShareTheVersionTable: drivers with tables of their own, one
// of them shared, migrate one database; each table is migrated once and
// recorded under its own name, and a custom version table is separate.
func TestTableSetsShareTheVersionTable(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, d dialect) {
		ctx := context.Background()
		url := d.newDB(t)
		opts := func(outbox, idem, versions string) wharf.Options {
			return wharf.Options{Outbox: wharf.OutboxOptions{TableName: outbox}, Idempotency: wharf.IdempotencyOptions{TableName: idem},
				Migrations: wharf.MigrationOptions{TableName: versions}}
		}
		a := openDriver(t, d, url, opts("outbox_a", "idem_shared", ""))
		b := openDriver(t, d, url, opts("outbox_b", "idem_shared", ""))
		c := openDriver(t, d, url, opts("outbox_c", "idem_c", "ops_versions"))
		appliedA, err := a.ApplyMigrations(ctx)
		require.NoError(t, err)
		appliedB, err := b.ApplyMigrations(ctx)
		require.NoError(t, err)
		require.NoError(t, c.Migrate(ctx))
		migs := allMigrations(t, d)
		require.Len(t, appliedA, len(migs))
		require.Len(t, appliedB, countOf(migs, "outbox"), "b finds the shared idempotency table migrated")
		for _, x := range appliedB {
			require.Equal(t, "outbox_b", x.Table)
		}
		nOutbox, nIdem := countOf(migs, "outbox"), countOf(migs, "idempotency")
		require.Equal(t, map[string]int{"outbox_a": nOutbox, "outbox_b": nOutbox, "idem_shared": nIdem}, versionRows(t, a, wharf.DefaultMigrationsTable))
		require.Equal(t, map[string]int{"outbox_c": nOutbox, "idem_c": nIdem}, versionRows(t, a, "ops_versions"))
		for _, drv := range []*wharf.Driver{a, b, c} {
			require.NoError(t, drv.CheckSchema(ctx))
		}
		_, err = a.Outbox().Enqueue(ctx, ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`)})
		require.NoError(t, err)
		st, err := b.Outbox().Stats(ctx)
		require.NoError(t, err)
		require.Zero(t, st.Total(), "b's outbox is its own")
	})
}

// TestNewDriverRefusesOneNameForTwoTables: the version table, the outbox
// and the idempotency table need three names.
func TestNewDriverRefusesOneNameForTwoTables(t *testing.T) {
	t.Parallel()
	d, _ := dialectByID("sqlite")
	for _, o := range []wharf.Options{
		{Outbox: wharf.OutboxOptions{TableName: "t"}, Idempotency: wharf.IdempotencyOptions{TableName: "t"}},
		{Migrations: wharf.MigrationOptions{TableName: "outbox_messages"}},
		{Migrations: wharf.MigrationOptions{TableName: "bad name"}},
	} {
		_, err := d.open(context.Background(), d.newDB(t), o)
		require.ErrorIs(t, err, ports.ErrInvalidArgument)
		require.True(t, strings.Contains(err.Error(), "both named") || strings.Contains(err.Error(), "Migrations.TableName"), err.Error())
	}
}
