package migrations

import (
	"context"
	"fmt"
	"io/fs"
	"strings"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/internal/sqlbase"
)

// Dialect is what a provider supplies for its migrations. It needs no
// database of its own: exports run without one.
type Dialect interface {
	sqlbase.Dialect
	// MigrationFiles returns the dialect's templates: versions.sql and the
	// numbered migrations.
	MigrationFiles() fs.FS
	// TableExists reports whether n's table exists.
	TableExists(ctx context.Context, db bun.IDB, n sqlbase.Names) (bool, error)
	// NowSQL is an SQL expression of the current time in core.TimeFormat,
	// for the version rows of exported scripts.
	NowSQL() string
	// TransactionalDDL reports whether DDL statements can be rolled back
	// with their transaction (exports wrap a plain script in one).
	TransactionalDDL() bool
}

// components in the order status reports them.
var components = []Component{Outbox, Idempotency}

// Applied is one migration Apply ran.
type Applied struct {
	Version   int
	Component Component
	Name      string
	// Table is the table's name as configured.
	Table string
	// Adopted is set on a table's first migration when the table existed
	// before (created before versioning, or by SetupStatements): the
	// migration found everything in place and recorded the version.
	Adopted bool
}

// Apply brings t's tables to the latest version on db: it creates the
// version table, refuses a table whose recorded version is newer than the
// code (ErrTooNew, before changing anything), then runs the pending
// migrations in number order, recording each. now is the applied_at value
// (core.TimeFormat). The caller serialises Apply between processes and runs
// it in a transaction where the dialect can (see the dialects' Migrate).
func (s *Set) Apply(ctx context.Context, db bun.IDB, t Tables, now string) ([]Applied, error) {
	vt, err := s.VersionTableSQL(t)
	if err != nil {
		return nil, err
	}
	for _, stmt := range Split(vt) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("create the schema version table %s: %w", t.Versions.Raw, err)
		}
	}
	recs, err := readVersions(ctx, db, t)
	if err != nil {
		return nil, err
	}
	current := map[Component]int{}
	for _, c := range components {
		current[c] = recs.version(t.Of(c).Raw)
		if err := s.tooNew(t, c, current[c]); err != nil {
			return nil, err
		}
	}
	steps, err := s.Steps(t, 0)
	if err != nil {
		return nil, err
	}
	existed := map[Component]bool{}
	for _, c := range components {
		if current[c] == 0 {
			if existed[c], err = s.d.TableExists(ctx, db, t.Of(c)); err != nil {
				return nil, fmt.Errorf("look up table %s: %w", t.Of(c).Raw, err)
			}
		}
	}
	insert := "INSERT INTO " + t.Versions.Table + " (table_name, version, component, name, applied_at) VALUES (?, ?, ?, ?, ?)"
	var applied []Applied
	for _, st := range steps {
		c := st.Component
		if st.Version <= current[c] {
			continue
		}
		for i, stmt := range st.Statements {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				return applied, fmt.Errorf("migration %s of table %s, statement %d of %d: %w", st.ID(), st.Table.Raw, i+1, len(st.Statements), err)
			}
		}
		if _, err := db.ExecContext(ctx, insert, st.Table.Raw, st.Version, string(c), st.Name, now); err != nil {
			return applied, fmt.Errorf("record migration %s of table %s in %s: %w", st.ID(), st.Table.Raw, t.Versions.Raw, err)
		}
		applied = append(applied, Applied{
			Version: st.Version, Component: c, Name: st.Name, Table: st.Table.Raw,
			Adopted: current[c] == 0 && existed[c],
		})
		current[c] = st.Version
	}
	return applied, nil
}

// tooNew returns ErrTooNew when version is above the code's latest for c.
func (s *Set) tooNew(t Tables, c Component, version int) error {
	latest := s.Latest(c)
	if version <= latest {
		return nil
	}
	return fmt.Errorf("table %s is at schema version %d and this code knows versions up to %d (a newer wharf migrated it); "+
		"run this program's newer release, or its `wharf migrate up`, instead: %w", t.Of(c).Raw, version, latest, ErrTooNew)
}

// Record is one row of the version table.
type Record struct {
	Version int
	Name    string
	// AppliedAt is as stored (core.TimeFormat).
	AppliedAt string
}

// TableStatus is the schema version of one table.
type TableStatus struct {
	Component Component
	Table     sqlbase.Names
	// Exists reports whether the table exists.
	Exists bool
	// Version is the highest migration recorded for the table, 0 for none.
	Version int
	// Latest is the code's latest migration of the component.
	Latest int
	// Applied are the recorded migrations, in number order.
	Applied []Record
	// Pending are the code's migrations above Version, in number order.
	Pending []Migration
}

// Err reports a table the code cannot use as it is: ErrTooNew, or
// ErrPending with the migrations it lacks.
func (ts TableStatus) Err() error {
	switch {
	case ts.Version > ts.Latest:
		return fmt.Errorf("table %s is at schema version %d and this code knows versions up to %d (a newer wharf migrated it): %w",
			ts.Table.Raw, ts.Version, ts.Latest, ErrTooNew)
	case len(ts.Pending) == 0:
		return nil
	case !ts.Exists:
		return fmt.Errorf("table %s does not exist; run Migrate (or wharf migrate up) to create it: %w", ts.Table.Raw, ErrPending)
	case ts.Version == 0 && ts.Exists:
		return fmt.Errorf("table %s has no schema version recorded (it was created before versioned migrations); run Migrate (or wharf migrate up) to adopt it: %w",
			ts.Table.Raw, ErrPending)
	}
	ids := make([]string, len(ts.Pending))
	for i, m := range ts.Pending {
		ids[i] = m.ID()
	}
	return fmt.Errorf("table %s is at schema version %d and this code needs %d (pending: %s); run Migrate (or wharf migrate up): %w",
		ts.Table.Raw, ts.Version, ts.Latest, strings.Join(ids, ", "), ErrPending)
}

// Status reads the schema versions of t's tables without changing
// anything; a database without a version table has none.
func (s *Set) Status(ctx context.Context, db bun.IDB, t Tables) ([]TableStatus, error) {
	migs, err := s.Migrations()
	if err != nil {
		return nil, err
	}
	var recs versions
	have, err := s.d.TableExists(ctx, db, t.Versions)
	if err != nil {
		return nil, fmt.Errorf("look up the schema version table %s: %w", t.Versions.Raw, err)
	}
	if have {
		if recs, err = readVersions(ctx, db, t); err != nil {
			return nil, err
		}
	}
	out := make([]TableStatus, 0, len(components))
	for _, c := range components {
		n := t.Of(c)
		ts := TableStatus{Component: c, Table: n, Applied: recs[n.Raw], Version: recs.version(n.Raw), Latest: s.Latest(c)}
		if ts.Exists, err = s.d.TableExists(ctx, db, n); err != nil {
			return nil, fmt.Errorf("look up table %s: %w", n.Raw, err)
		}
		for _, m := range migs {
			if m.Component == c && m.Version > ts.Version {
				ts.Pending = append(ts.Pending, m)
			}
		}
		out = append(out, ts)
	}
	return out, nil
}

// versions are the recorded rows by table name, in number order.
type versions map[string][]Record

func (v versions) version(table string) int {
	rs := v[table]
	if len(rs) == 0 {
		return 0
	}
	return rs[len(rs)-1].Version
}

func readVersions(ctx context.Context, db bun.IDB, t Tables) (versions, error) {
	rows, err := db.QueryContext(ctx, "SELECT table_name, version, name, applied_at FROM "+t.Versions.Table+
		" WHERE table_name IN (?) ORDER BY table_name, version", bun.In([]string{t.Outbox.Raw, t.Idempotency.Raw}))
	if err != nil {
		return nil, fmt.Errorf("read the schema version table %s: %w", t.Versions.Raw, err)
	}
	defer rows.Close()
	out := versions{}
	for rows.Next() {
		var (
			table string
			r     Record
		)
		if err := rows.Scan(&table, &r.Version, &r.Name, &r.AppliedAt); err != nil {
			return nil, fmt.Errorf("read the schema version table %s: %w", t.Versions.Raw, err)
		}
		out[table] = append(out[table], r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the schema version table %s: %w", t.Versions.Raw, err)
	}
	return out, nil
}
