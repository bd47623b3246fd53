package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/dialect"
)

// statusJSON is a table's schema version for --json.
type statusJSON struct {
	Component string          `json:"component"`
	Table     string          `json:"table"`
	Exists    bool            `json:"exists"`
	Version   int             `json:"version"`
	Latest    int             `json:"latest"`
	State     string          `json:"state"` // up_to_date, pending, too_new
	Applied   []migrationJSON `json:"applied"`
	Pending   []migrationJSON `json:"pending"`
}

type migrationJSON struct {
	ID        string  `json:"id"`
	Version   int     `json:"version"`
	Component string  `json:"component"`
	Name      string  `json:"name"`
	Table     string  `json:"table,omitempty"`
	AppliedAt *string `json:"applied_at,omitempty"`
	Adopted   bool    `json:"adopted,omitempty"`
}

func migrationOut(m wharf.Migration) migrationJSON {
	return migrationJSON{ID: m.String(), Version: m.Version, Component: m.Component, Name: m.Name}
}

func appliedOut(a wharf.AppliedMigration) migrationJSON {
	out := migrationOut(a.Migration)
	out.Table, out.Adopted = a.Table, a.Adopted
	if !a.AppliedAt.IsZero() {
		s := timeJSON(a.AppliedAt)
		out.AppliedAt = &s
	}
	return out
}

func state(t wharf.TableVersion) string {
	switch err := t.Err(); {
	case errors.Is(err, wharf.ErrSchemaTooNew):
		return "too_new"
	case err != nil:
		return "pending"
	}
	return "up_to_date"
}

func statusOut(st wharf.SchemaStatus) []statusJSON {
	out := make([]statusJSON, len(st.Tables))
	for i, t := range st.Tables {
		s := statusJSON{Component: t.Component, Table: t.Table, Exists: t.Exists, Version: t.Version, Latest: t.Latest, State: state(t),
			Applied: []migrationJSON{}, Pending: []migrationJSON{}}
		for _, a := range t.Applied {
			s.Applied = append(s.Applied, appliedOut(a))
		}
		for _, m := range t.Pending {
			s.Pending = append(s.Pending, migrationOut(m))
		}
		out[i] = s
	}
	return out
}

// printStatus writes the status table for people.
func (c *cli) printStatus(st wharf.SchemaStatus) {
	w := c.table()
	fmt.Fprintf(w, "TABLE\tCOMPONENT\tVERSION\tLATEST\tSTATE\n")
	for _, t := range st.Tables {
		s := "up to date"
		switch state(t) {
		case "too_new":
			s = "newer than this wharf: upgrade it"
		case "pending":
			ids := make([]string, len(t.Pending))
			for i, m := range t.Pending {
				ids[i] = m.String()
			}
			s = "pending: " + strings.Join(ids, ", ")
			if !t.Exists {
				s = "missing; " + s
			} else if t.Version == 0 {
				s = "unversioned (adopted by migrate up); " + s
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\n", t.Table, t.Component, t.Version, t.Latest, s)
	}
	_ = w.Flush()
	fmt.Fprintf(c.stdout, "(%s, versions in %s)\n", st.Dialect, st.VersionTable)
}

// statusCode maps a status to its exit status.
func statusCode(st wharf.SchemaStatus) error {
	switch err := st.Err(); {
	case errors.Is(err, wharf.ErrSchemaTooNew):
		return withCode(exitTooNew, err)
	case err != nil:
		return withCode(exitPending, err)
	}
	return nil
}

func migrateUp(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return usageErrorf("takes no arguments (got %q)", args)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	drv, err := c.open(ctx)
	if err != nil {
		return err
	}
	applied, err := drv.ApplyMigrations(ctx)
	if errors.Is(err, wharf.ErrSchemaTooNew) {
		return withCode(exitTooNew, err)
	}
	if err != nil {
		return err
	}
	st, err := drv.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	if c.json {
		out := struct {
			Dialect string          `json:"dialect"`
			Applied []migrationJSON `json:"applied"`
			Tables  []statusJSON    `json:"tables"`
		}{st.Dialect, []migrationJSON{}, statusOut(st)}
		for _, a := range applied {
			out.Applied = append(out.Applied, appliedOut(a))
		}
		return c.writeJSON(out)
	}
	if len(applied) == 0 {
		fmt.Fprintln(c.stdout, "Nothing to apply: the schema is up to date.")
	} else {
		fmt.Fprintf(c.stdout, "Applied %d migration(s):\n", len(applied))
		w := c.table()
		for _, a := range applied {
			note := ""
			if a.Adopted {
				note = "\t(adopted the existing table)"
			}
			fmt.Fprintf(w, "  %s\t%s%s\n", a.String(), a.Table, note)
		}
		_ = w.Flush()
	}
	c.printStatus(st)
	return nil
}

func migrateStatus(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return usageErrorf("takes no arguments (got %q)", args)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	drv, err := c.open(ctx)
	if err != nil {
		return err
	}
	st, err := drv.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	if c.json {
		if err := c.writeJSON(struct {
			Dialect      string       `json:"dialect"`
			VersionTable string       `json:"version_table"`
			Tables       []statusJSON `json:"tables"`
		}{st.Dialect, st.VersionTable, statusOut(st)}); err != nil {
			return err
		}
	} else {
		c.printStatus(st)
	}
	return statusCode(st)
}

func migrateSQLFlags(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.f.format, "format", "plain", "plain (one script); goose, golang-migrate or bun (one file per migration)")
	fs.IntVar(&c.f.since, "since", 0, "skip the migrations numbered up to this (a database at that version has them)")
	fs.IntVar(&c.f.firstVersion, "first-version", 0, "number the files from this version on (0: wharf's numbers)")
	fs.StringVar(&c.f.out, "out", "", "write the files into this directory instead of stdout")
	fs.BoolVar(&c.f.force, "force", false, "overwrite files in --out")
}

func migrateSQL(_ context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return usageErrorf("takes no arguments (got %q)", args)
	}
	name := c.dialect
	if name == "" {
		u, source, err := c.resolveURL()
		if err != nil {
			return usageErrorf("pass --dialect sqlite|postgres|mysql (no database is opened; %v)", err)
		}
		c.url = u
		e, err := dialect.ByURL(u)
		if err != nil {
			return usageErrorf("the URL of %s: %v", source, err)
		}
		name = e.Name
	}
	files, err := wharf.ExportMigrations(wharf.ExportOptions{
		Dialect: name, Format: wharf.MigrationFormat(c.f.format), Options: c.options(),
		Since: c.f.since, FirstVersion: c.f.firstVersion,
	})
	if err != nil {
		return withCode(exitUsage, err)
	}
	if len(files) == 0 {
		migs, _ := wharf.Migrations(name)
		fmt.Fprintf(c.stderr, "Nothing to export: %s's latest migration is %d.\n", name, len(migs))
	}
	if c.f.out != "" {
		return c.writeFiles(files)
	}
	if c.json {
		out := make([]struct {
			Name    string `json:"name"`
			Content string `json:"content"`
		}, len(files))
		for i, f := range files {
			out[i].Name, out[i].Content = f.Name, f.Content
		}
		return c.writeJSON(out)
	}
	for _, f := range files {
		if len(files) > 1 || c.f.format != string(wharf.FormatPlain) {
			fmt.Fprintf(c.stdout, "-- ==> %s <==\n", f.Name)
		}
		fmt.Fprint(c.stdout, f.Content)
	}
	return nil
}

// writeFiles writes files into --out, refusing to replace a different file
// unless --force.
func (c *cli) writeFiles(files []wharf.MigrationFile) error {
	if err := os.MkdirAll(c.f.out, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		p := filepath.Join(c.f.out, f.Name)
		if old, err := os.ReadFile(p); err == nil && !c.f.force {
			if string(old) == f.Content {
				fmt.Fprintf(c.stderr, "unchanged %s\n", p)
				continue
			}
			return usageErrorf("%s exists and differs; pass --force to replace it", p)
		}
		if err := os.WriteFile(p, []byte(f.Content), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "wrote %s\n", p)
	}
	return nil
}
