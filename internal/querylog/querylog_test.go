package querylog

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun/dialect/mysqldialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/schema"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, dialect, in, want string }{
		{"StringsAndNumbers", "postgres", `SELECT * FROM "t" WHERE a = 'secret' AND b = 42 AND c = -1.5e3`, `SELECT * FROM "t" WHERE a = ? AND b = ? AND c = -?`},
		{"DoubledQuotes", "sqlite", `INSERT INTO t VALUES ('it''s secret', 'x')`, `INSERT INTO t VALUES (?, ?)`},
		{"MySQLBackslashEscapes", "mysql", `SELECT 'a\'secret', 'b\\', 'secret'`, `SELECT ?, ?, ?`},
		{"PostgresEscapeStrings", "postgres", `SELECT E'b\'secret', 'c:\', 'secret'`, `SELECT ?, ?, ?`},
		{"PostgresBackslashIsPlainInStandardStrings", "postgres", `VALUES ('C:\dir\', 'secret', 'alice@secret')`, `VALUES (?, ?, ?)`},
		{"SQLiteBackslashIsPlain", "sqlite", `VALUES ('C:\dir\', 'secret', 'alice@secret')`, `VALUES (?, ?, ?)`},
		{"PostgresDollarQuotes", "postgres", `SELECT $$a 'secret$$, $tag$x$$secret$tag$, $1`, `SELECT ?, ?, $?`},
		{"MySQLDoubleQuotedStrings", "mysql", `SELECT "secret", "it\"s secret" FROM t`, `SELECT ?, ? FROM t`},
		{"ArrayLiterals", "postgres", `SELECT unnest('{"secret","other"}'::text[])`, `SELECT unnest(?::text[])`},
		{"IdentifiersAndDigitsInNamesStay", "mysql", "SELECT col1, `t2`.`x` FROM `wharf_t_1` LIMIT 10", "SELECT col1, `t2`.`x` FROM `wharf_t_1` LIMIT ?"},
		{"BlobLiterals", "sqlite", `SELECT X'736563726574', x'00'`, `SELECT ?, ?`},
		{"UnterminatedStringIsRedactedToTheEnd", "postgres", `SELECT 'secret`, `SELECT ?`},
		{"UnterminatedDollarQuoteIsRedactedToTheEnd", "postgres", `SELECT $q$secret`, `SELECT ?`},
		{"NoLiterals", "sqlite", `SELECT id FROM t`, `SELECT id FROM t`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Redact(tc.dialect, tc.in)
			require.Equal(t, tc.want, got)
			require.NotContains(t, got, "secret")
		})
	}
}

// TestRedactBunFormattedValues formats hostile values with each of bun's
// dialects, as the query builder does, and checks that no value survives
// redaction: a value must not be able to end its string early.
func TestRedactBunFormattedValues(t *testing.T) {
	t.Parallel()
	values := []any{`C:\dir\`, `it's`, `"quoted"`, `\'`, `$$`, `back\\slash\`, "hunter2-secret", "alice@example.com"}
	for _, tc := range []struct {
		name, wharfName string
		dialect         schema.Dialect
	}{
		{"Postgres", "postgres", pgdialect.New()},
		{"MySQL", "mysql", mysqldialect.New()},
		{"SQLite", "sqlite", sqlitedialect.New()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for i := range values {
				// Each value first, so every later one follows it.
				args := append(append([]any{}, values[i:]...), values[:i]...)
				q := schema.NewQueryGen(tc.dialect).FormatQuery("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)", args...)
				got := Redact(tc.wharfName, q)
				require.Equal(t, "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)", got, "formatted: %s", q)
			}
		})
	}
}
