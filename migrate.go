package wharf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/internal/idemsql"
	"github.com/wharf-go/wharf/internal/migrations"
	"github.com/wharf-go/wharf/internal/outboxsql"
)

// DefaultMigrationsTable is the schema version table's default name.
const DefaultMigrationsTable = "wharf_schema_migrations"

// MigrationOptions configure the schema version table. The zero value
// means the defaults.
type MigrationOptions struct {
	// TableName is the version table, named like OutboxOptions.TableName.
	// Default DefaultMigrationsTable, unqualified: on the search_path
	// (PostgreSQL) or in the connection's database (MySQL). It records
	// each table by its configured name, so several drivers with table
	// sets of their own can share it.
	TableName string
}

func (m MigrationOptions) validate(o *Options) error {
	if m.TableName != "" {
		if err := check.Identifier(m.TableName); err != nil {
			return fmt.Errorf("Migrations.TableName: %w", err)
		}
	}
	outbox, idem := o.Outbox.TableName, o.Idempotency.TableName
	if outbox == "" {
		outbox = outboxsql.DefaultTableName
	}
	if idem == "" {
		idem = idemsql.DefaultTableName
	}
	return migrations.Distinct(outbox, idem, m.TableName)
}

// Errors of a schema that does not match this code, from Migrate,
// CheckSchema and SchemaStatus.Err; match them with errors.Is.
var (
	// ErrSchemaTooNew: a newer wharf migrated the database, and this code
	// does not know its latest migrations. Migrate changes nothing. During
	// a rolling upgrade, older instances see it until they are replaced:
	// run migrations as a step before the deployment (wharf migrate up)
	// rather than from every instance's start when that matters.
	ErrSchemaTooNew = migrations.ErrTooNew
	// ErrSchemaOutdated: the database lacks migrations this code needs
	// (CheckSchema); run Migrate or wharf migrate up.
	ErrSchemaOutdated = migrations.ErrPending
)

// Migration is one of wharf's numbered schema migrations. Numbers are one
// sequence per dialect; each migration changes one component's table.
type Migration struct {
	Version int
	// Component is "outbox" or "idempotency".
	Component string
	// Name describes it ("create", "fillfactor").
	Name string
}

// String names the migration as its file is named: "0003_outbox_fillfactor".
func (m Migration) String() string { return fmt.Sprintf("%04d_%s_%s", m.Version, m.Component, m.Name) }

// AppliedMigration is a migration a table has had.
type AppliedMigration struct {
	Migration
	// Table is the table's name as configured.
	Table string
	// AppliedAt is when it was recorded (zero when ApplyMigrations reports
	// it: now).
	AppliedAt time.Time
	// Adopted is set by ApplyMigrations on a table's first migration when
	// the table existed without a recorded version (created by a wharf
	// before versioned migrations): the migration found it in place and
	// recorded its version.
	Adopted bool
}

// TableVersion is the schema version of one table.
type TableVersion struct {
	// Component is "outbox" or "idempotency".
	Component string
	// Table is the table's name as configured.
	Table string
	// Exists reports whether the table exists.
	Exists bool
	// Version is the highest migration recorded for the table; 0 for none
	// (a new table, or one created before versioned migrations).
	Version int
	// Latest is this code's latest migration of the component.
	Latest int
	// Applied are the recorded migrations, Pending this code's migrations
	// above Version, both in number order.
	Applied []AppliedMigration
	Pending []Migration
	err     error
}

// Err is nil when the table is at Latest, an error matching
// ErrSchemaOutdated when it has pending migrations, and one matching
// ErrSchemaTooNew when Version is above Latest.
func (v TableVersion) Err() error { return v.err }

// SchemaStatus is the schema version of a driver's tables.
type SchemaStatus struct {
	// Dialect is "sqlite", "postgres" or "mysql".
	Dialect string
	// VersionTable is the version table's name.
	VersionTable string
	// Tables are the outbox's table and the idempotency store's.
	Tables []TableVersion
}

// Err returns the first table's error (see TableVersion.Err), too-new
// schemas first.
func (s SchemaStatus) Err() error {
	var pending error
	for _, t := range s.Tables {
		switch err := t.Err(); {
		case errors.Is(err, ErrSchemaTooNew):
			return err
		case err != nil && pending == nil:
			pending = err
		}
	}
	return pending
}

// tables returns the driver's migration tables.
func (drv *Driver) tables() (migrations.Tables, error) {
	return migrations.NewTables(drv.d, drv.outbox.Queries().Names().Raw, drv.idem.Names().Raw, drv.versions)
}

// Migrate brings the outbox and idempotency tables to this code's schema
// version: it applies the pending versioned migrations in number order and
// records each in the version table (MigrationOptions), then checks the
// schema (CheckSchema). Tables created before versioned migrations are
// adopted: their first migration finds them in place (IF NOT EXISTS) and
// records it. It is safe to run on every start, from several processes at
// once: they are serialised (PostgreSQL: a transaction-level advisory
// lock, which works through PgBouncer; MySQL: GET_LOCK; SQLite: its write
// lock), and all migrations run in one transaction where the database
// runs DDL in transactions (PostgreSQL, SQLite). MySQL commits each
// statement on its own; its migrations are written to be run again after a
// failure. A database whose recorded version is newer than this code is
// refused with an error matching ErrSchemaTooNew, before any change.
func (drv *Driver) Migrate(ctx context.Context) error {
	_, err := drv.ApplyMigrations(ctx)
	return err
}

// ApplyMigrations is Migrate, returning the migrations it applied (none
// when the schema was up to date).
func (drv *Driver) ApplyMigrations(ctx context.Context) ([]AppliedMigration, error) {
	t, err := drv.tables()
	if err != nil {
		return nil, fmt.Errorf("wharf: %s migrate: %w", drv.name, err)
	}
	set := drv.d.Migrations()
	var applied []migrations.Applied
	err = drv.d.Migrate(ctx, drv.db, func(ctx context.Context, conn bun.IDB) error {
		var err error
		applied, err = set.Apply(ctx, conn, t, core.FormatTime(time.Now()))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("wharf: %s migrate: %w", drv.name, drv.d.Translate(err))
	}
	out := make([]AppliedMigration, len(applied))
	for i, a := range applied {
		out[i] = AppliedMigration{
			Migration: Migration{Version: a.Version, Component: string(a.Component), Name: a.Name},
			Table:     a.Table, Adopted: a.Adopted,
		}
		drv.log.LogAttrs(ctx, slog.LevelInfo, "schema migration applied", slog.String("dialect", drv.name),
			slog.String("table", a.Table), slog.String("migration", out[i].String()), slog.Bool("adopted", a.Adopted))
	}
	return out, drv.CheckSchema(ctx)
}

// MigrationStatus reports the schema version of the driver's tables
// without changing anything.
func (drv *Driver) MigrationStatus(ctx context.Context) (SchemaStatus, error) {
	st, err := drv.status(ctx)
	if err != nil {
		return st, fmt.Errorf("wharf: %s migration status: %w", drv.name, drv.d.Translate(err))
	}
	return st, nil
}

func (drv *Driver) status(ctx context.Context) (SchemaStatus, error) {
	t, err := drv.tables()
	if err != nil {
		return SchemaStatus{}, err
	}
	rows, err := drv.d.Migrations().Status(ctx, drv.db, t)
	if err != nil {
		return SchemaStatus{}, err
	}
	st := SchemaStatus{Dialect: drv.name, VersionTable: t.Versions.Raw}
	for _, r := range rows {
		tv := TableVersion{Component: string(r.Component), Table: r.Table.Raw, Exists: r.Exists, Version: r.Version, Latest: r.Latest, err: r.Err()}
		for _, a := range r.Applied {
			at, _ := core.ParseTime(a.AppliedAt) // informational: a foreign format reads as zero
			tv.Applied = append(tv.Applied, AppliedMigration{
				Migration: Migration{Version: a.Version, Component: string(r.Component), Name: a.Name}, Table: r.Table.Raw, AppliedAt: at,
			})
		}
		for _, m := range r.Pending {
			tv.Pending = append(tv.Pending, Migration{Version: m.Version, Component: string(m.Component), Name: m.Name})
		}
		st.Tables = append(st.Tables, tv)
	}
	return st, nil
}

// CheckSchema reports whether the driver's tables are ready for this code:
// every table and index exists (the error names what is missing) and each
// table is at this code's schema version (otherwise the error matches
// ErrSchemaOutdated or ErrSchemaTooNew). Run Migrate, or wharf migrate up,
// to fix the first two. On MySQL it also refuses, as Migrate does, a pool
// opened without the provider's session settings.
func (drv *Driver) CheckSchema(ctx context.Context) error {
	if err := drv.d.CheckSchema(ctx, drv.db, drv.outbox.Queries(), drv.idem.Names()); err != nil {
		return fmt.Errorf("wharf: %s schema: %w", drv.name, err)
	}
	st, err := drv.status(ctx)
	if err == nil {
		err = st.Err()
	}
	if err != nil {
		return fmt.Errorf("wharf: %s schema: %w", drv.name, drv.d.Translate(err))
	}
	return nil
}

// SetupStatements returns the statements that bring an empty database to
// this code's schema, for applications that run SQL through a migration
// tool of their own (see ExportMigrations for files in its format): the
// version table, every migration and the version rows, in order, one
// statement each. Applied once, they leave a database that Migrate and
// CheckSchema recognise; on a database with a version table already, run
// only the migrations it lacks (ExportMigrations with Since).
func (drv *Driver) SetupStatements() []string {
	t, err := drv.tables()
	if err == nil {
		var stmts []string
		if stmts, err = drv.d.Migrations().Script(t); err == nil {
			return stmts
		}
	}
	// Names are validated by NewDriver and the files by the tests: not
	// expected.
	drv.log.LogAttrs(context.Background(), slog.LevelError, "render the schema migrations", slog.String("error", err.Error()))
	return nil
}

// MigrationFormat is a layout of exported migrations.
type MigrationFormat string

// The formats of ExportMigrations.
const (
	// FormatPlain is one script for psql, mysql or sqlite3, in one
	// transaction where the dialect runs DDL in transactions.
	FormatPlain MigrationFormat = "plain"
	// FormatGoose is one file per migration for pressly/goose
	// (-- +goose Up; NO TRANSACTION on MySQL).
	FormatGoose MigrationFormat = "goose"
	// FormatGolangMigrate is one NNNN_name.up.sql file per migration for
	// golang-migrate. wharf has no down migrations.
	FormatGolangMigrate MigrationFormat = "golang-migrate"
	// FormatBun is one NNNN_name.tx.up.sql file per migration for
	// bun/migrate's SQL migrations (.up.sql on MySQL, which cannot roll
	// DDL back), one statement between --bun:split lines.
	FormatBun MigrationFormat = "bun"
)

// ExportOptions select what ExportMigrations writes.
type ExportOptions struct {
	// Dialect is "sqlite", "postgres" or "mysql"; its provider package must
	// be imported.
	Dialect string
	// Format defaults to FormatPlain.
	Format MigrationFormat
	// Options name the tables (Outbox.TableName, Idempotency.TableName,
	// Migrations.TableName); the rest is ignored.
	Options Options
	// Since skips the migrations numbered up to Since: those a database at
	// version Since already has (see MigrationStatus). 0 exports all.
	Since int
	// FirstVersion, when positive, numbers the files from it on, to follow
	// the application's own migrations; 0 keeps wharf's numbers.
	FirstVersion int
}

// MigrationFile is one exported file.
type MigrationFile struct {
	Name    string
	Content string
}

// ExportMigrations renders wharf's migrations for the dialect and the
// tables of opts, for goose, golang-migrate, bun/migrate or plain
// psql/mysql/sqlite3.
// Every file creates the version table if needed and records its
// migrations there, so Migrate, CheckSchema and wharf migrate status know
// a database migrated this way. No file is returned when no migration is
// numbered above Since. Invalid options are an error matching
// ports.ErrInvalidArgument.
func ExportMigrations(opts ExportOptions) ([]MigrationFile, error) {
	if opts.Dialect == "" {
		return nil, check.Invalidf("wharf: export migrations: no Dialect; use sqlite, postgres or mysql")
	}
	e, err := dialect.ByName(opts.Dialect)
	if err == nil && e.Migrations == nil {
		err = fmt.Errorf("provider %s registered no migrations", e.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("wharf: export migrations: %w", err)
	}
	if err := opts.Options.Migrations.validate(&opts.Options); err != nil {
		return nil, fmt.Errorf("wharf: export migrations: %w", err)
	}
	outbox, idem := opts.Options.Outbox.TableName, opts.Options.Idempotency.TableName
	if outbox == "" {
		outbox = outboxsql.DefaultTableName
	}
	if idem == "" {
		idem = idemsql.DefaultTableName
	}
	t, err := migrations.NewTables(e.Migrations.Dialect(), outbox, idem, opts.Options.Migrations.TableName)
	if err != nil {
		return nil, fmt.Errorf("wharf: export migrations: %w", err)
	}
	files, err := e.Migrations.Export(t, migrations.ExportOptions{
		Format: migrations.Format(opts.Format), Since: opts.Since, FirstVersion: opts.FirstVersion,
	})
	if err != nil {
		return nil, fmt.Errorf("wharf: export migrations: %w", err)
	}
	out := make([]MigrationFile, len(files))
	for i, f := range files {
		out[i] = MigrationFile(f)
	}
	return out, nil
}

// Migrations lists wharf's migrations of a dialect ("sqlite", "postgres",
// "mysql"; its provider package must be imported), in number order.
func Migrations(dialectName string) ([]Migration, error) {
	e, err := dialect.ByName(dialectName)
	if err == nil && e.Migrations == nil {
		err = fmt.Errorf("provider %s registered no migrations", e.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("wharf: migrations: %w", err)
	}
	migs, err := e.Migrations.Migrations()
	if err != nil {
		return nil, fmt.Errorf("wharf: migrations: %w", err)
	}
	out := make([]Migration, len(migs))
	for i, m := range migs {
		out[i] = Migration{Version: m.Version, Component: string(m.Component), Name: m.Name}
	}
	return out, nil
}
