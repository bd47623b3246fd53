package querylog

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedact(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, in, want string }{
		{"StringsAndNumbers", `SELECT * FROM "t" WHERE a = 'secret' AND b = 42 AND c = -1.5e3`, `SELECT * FROM "t" WHERE a = ? AND b = ? AND c = -?`},
		{"DoubledQuotes", `INSERT INTO t VALUES ('it''s secret', 'x')`, `INSERT INTO t VALUES (?, ?)`},
		{"BackslashEscapes", `SELECT 'a\'secret', E'b\\secret'`, `SELECT ?, ?`},
		{"ArrayLiterals", `SELECT unnest('{"secret","other"}'::text[])`, `SELECT unnest(?::text[])`},
		{"IdentifiersAndDigitsInNamesStay", "SELECT col1, `t2`.`x` FROM \"wharf_t_1\" LIMIT 10", "SELECT col1, `t2`.`x` FROM \"wharf_t_1\" LIMIT ?"},
		{"BlobLiterals", `SELECT X'736563726574', x'00'`, `SELECT ?, ?`},
		{"UnterminatedStringIsRedactedToTheEnd", `SELECT 'secret`, `SELECT ?`},
		{"NoLiterals", `SELECT id FROM t`, `SELECT id FROM t`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := Redact(tc.in)
			require.Equal(t, tc.want, got)
			require.NotContains(t, got, "secret")
		})
	}
}
