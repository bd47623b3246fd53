// Package migrations versions wharf's schema. Each provider embeds its
// dialect's migrations as numbered SQL templates, NNNN_component_name.sql
// (component "outbox" or "idempotency"), and the template of the version
// table, versions.sql. Numbers are one sequence per dialect, so an export
// numbers its files the same way every time; each migration changes the
// table of its component only.
//
// The version table records, per table, which migrations it has had: one
// row per (table name as configured, migration number). Several wharf table
// sets in one database share it, and two drivers sharing one table (an
// idempotency table, say) migrate it once. A table's version is the highest
// number recorded for it.
//
// Templates are rendered with text/template; the data is the table's
// validated names (see Tables) quoted by the dialect, never user input:
//
//	{{.Table}}               the quoted, possibly schema-qualified table
//	{{.Schema}}              the quoted schema and its dot, or ""
//	{{.Base}}                the quoted table name without its schema
//	{{.Index "_claim_idx"}}  the quoted index name derived from the table's
//	                         (sqlbase.Names.Index), without schema
//
// A file holds statements that each end with ";" at the end of a line;
// comment lines ("--") are kept in exports and skipped when running. The
// first migration of each component is written with IF NOT EXISTS, so a
// table created before versioning is adopted by running it. On a database
// that commits DDL statement by statement (MySQL) every statement of a
// migration must be safe to run again: a failure between two of them leaves
// the first applied and the migration unrecorded.
package migrations

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"text/template"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/sqlbase"
)

// Component is what a table holds.
type Component string

// The components of a wharf schema.
const (
	Outbox      Component = "outbox"
	Idempotency Component = "idempotency"
)

// DefaultVersionTable is the version table's name when none is configured.
const DefaultVersionTable = "wharf_schema_migrations"

// VersionsFile is the template of the version table's CREATE statement.
const VersionsFile = "versions.sql"

// Sentinels of a schema that does not match the code.
var (
	// ErrTooNew: the database records a migration this code does not know
	// (a newer wharf migrated it).
	ErrTooNew = errors.New("database schema is newer than this code")
	// ErrPending: the database lacks migrations this code needs.
	ErrPending = errors.New("database schema has pending migrations")
)

// Migration is one numbered migration of one component.
type Migration struct {
	Version   int
	Component Component
	// Name is the file name's last part ("create" in 0001_outbox_create.sql).
	Name string
	// File is the file name.
	File string
	tmpl *template.Template
}

// ID names the migration in messages: "0003_outbox_fillfactor".
func (m Migration) ID() string { return strings.TrimSuffix(m.File, ".sql") }

var fileName = regexp.MustCompile(`^([0-9]{4})_(outbox|idempotency)_([a-z0-9_]+)\.sql$`)

// Set is one dialect's migrations, parsed on first use.
type Set struct {
	d Dialect

	once     sync.Once
	migs     []Migration
	versions *template.Template
	err      error
}

// NewSet returns the migrations of d (d.MigrationFiles()).
func NewSet(d Dialect) *Set { return &Set{d: d} }

// Dialect returns the set's dialect.
func (s *Set) Dialect() Dialect { return s.d }

// Migrations returns every migration in number order, or why the files do
// not parse (a bad name, a gap in the numbers, a template error).
func (s *Set) Migrations() ([]Migration, error) {
	s.once.Do(func() { s.migs, s.versions, s.err = parse(s.d.MigrationFiles()) })
	return s.migs, s.err
}

// Latest is the highest migration number of c, 0 when it has none.
func (s *Set) Latest(c Component) int {
	migs, _ := s.Migrations()
	latest := 0
	for _, m := range migs {
		if m.Component == c {
			latest = m.Version
		}
	}
	return latest
}

func parse(fsys fs.FS) ([]Migration, *template.Template, error) {
	if fsys == nil {
		return nil, nil, errors.New("migrations: the dialect has no migration files")
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, nil, fmt.Errorf("migrations: read the files: %w", err)
	}
	var (
		migs     []Migration
		versions *template.Template
	)
	for _, e := range entries {
		name := e.Name()
		text, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, nil, fmt.Errorf("migrations: read %s: %w", name, err)
		}
		t, err := template.New(name).Option("missingkey=error").Parse(string(text))
		if err != nil {
			return nil, nil, fmt.Errorf("migrations: %w", err)
		}
		if name == VersionsFile {
			versions = t
			continue
		}
		m := fileName.FindStringSubmatch(name)
		if m == nil {
			return nil, nil, fmt.Errorf("migrations: file %s is not named NNNN_outbox_name.sql or NNNN_idempotency_name.sql", name)
		}
		v, _ := strconv.Atoi(m[1])
		migs = append(migs, Migration{Version: v, Component: Component(m[2]), Name: m[3], File: name, tmpl: t})
	}
	if versions == nil {
		return nil, nil, fmt.Errorf("migrations: no %s", VersionsFile)
	}
	sort.Slice(migs, func(i, j int) bool { return migs[i].Version < migs[j].Version })
	for i, m := range migs {
		if m.Version != i+1 {
			return nil, nil, fmt.Errorf("migrations: %s is number %d, expected %d: numbers start at 1 without gaps or repeats", m.File, m.Version, i+1)
		}
	}
	return migs, versions, nil
}

// Tables are the tables of one driver: the two it migrates and the version
// table.
type Tables struct {
	Outbox, Idempotency, Versions sqlbase.Names
}

// NewTables validates the three names ("" for versions means
// DefaultVersionTable).
func NewTables(d sqlbase.Dialect, outbox, idempotency, versions string) (Tables, error) {
	if versions == "" {
		versions = DefaultVersionTable
	}
	var (
		t   Tables
		err error
	)
	if t.Outbox, err = sqlbase.NewNames("outbox", outbox, d); err != nil {
		return t, err
	}
	if t.Idempotency, err = sqlbase.NewNames("idempotency", idempotency, d); err != nil {
		return t, err
	}
	if t.Versions, err = sqlbase.NewNames("schema version", versions, d); err != nil {
		return t, err
	}
	return t, Distinct(outbox, idempotency, versions)
}

// Distinct refuses two of the three tables with one name ("" for versions
// means DefaultVersionTable). Case is ignored: MySQL and SQLite may.
func Distinct(outbox, idempotency, versions string) error {
	if versions == "" {
		versions = DefaultVersionTable
	}
	seen := map[string]string{}
	for _, n := range []struct{ what, raw string }{{"outbox", outbox}, {"idempotency", idempotency}, {"schema version", versions}} {
		k := strings.ToLower(n.raw)
		if other, dup := seen[k]; dup {
			return check.Invalidf("the %s table and the %s table are both named %q; give each its own name", other, n.what, n.raw)
		}
		seen[k] = n.what
	}
	return nil
}

// Of returns the names of c's table.
func (t Tables) Of(c Component) sqlbase.Names {
	if c == Outbox {
		return t.Outbox
	}
	return t.Idempotency
}

// Step is a migration rendered for its table.
type Step struct {
	Migration
	// Table is the table it changes.
	Table sqlbase.Names
	// SQL is the rendered file, comments included.
	SQL string
	// Statements are SQL's statements, without comment lines or the final
	// semicolons.
	Statements []string
}

// data is what templates see.
type data struct {
	n     sqlbase.Names
	quote func(string) string
}

func (d data) Table() string              { return d.n.Table }
func (d data) Schema() string             { return d.n.Schema }
func (d data) Base() string               { return d.quote(d.n.Base) }
func (d data) Index(suffix string) string { return d.quote(d.n.Index(suffix)) }

func render(t *template.Template, n sqlbase.Names, quote func(string) string) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, data{n: n, quote: quote}); err != nil {
		return "", fmt.Errorf("migrations: render %s: %w", t.Name(), err)
	}
	return b.String(), nil
}

// Steps renders, in order, the migrations numbered above since.
func (s *Set) Steps(t Tables, since int) ([]Step, error) {
	migs, err := s.Migrations()
	if err != nil {
		return nil, err
	}
	var steps []Step
	for _, m := range migs {
		if m.Version <= since {
			continue
		}
		n := t.Of(m.Component)
		text, err := render(m.tmpl, n, s.d.Quote)
		if err != nil {
			return nil, err
		}
		steps = append(steps, Step{Migration: m, Table: n, SQL: text, Statements: Split(text)})
	}
	return steps, nil
}

// VersionTableSQL renders the version table's CREATE TABLE IF NOT EXISTS.
func (s *Set) VersionTableSQL(t Tables) (string, error) {
	if _, err := s.Migrations(); err != nil {
		return "", err
	}
	return render(s.versions, t.Versions, s.d.Quote)
}

// Split returns the statements of a rendered file: each ends with ";" at
// the end of a line; lines that are only a comment are dropped, and so is a
// statement that would be empty.
func Split(text string) []string {
	var (
		out []string
		cur []string
	)
	flush := func() {
		if s := strings.TrimSpace(strings.Join(cur, "\n")); s != "" {
			out = append(out, s)
		}
		cur = cur[:0]
	}
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		line = strings.TrimRight(line, " \t\r")
		if strings.HasSuffix(line, ";") {
			cur = append(cur, strings.TrimSuffix(line, ";"))
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return out
}
