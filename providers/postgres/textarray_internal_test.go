package postgres

import (
	"testing"

	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/schema"
)

// TestTextArray: Complete's and Release's list arguments render exactly as
// bun's pgdialect.Array renders a []string.
func TestTextArray(t *testing.T) {
	for _, in := range [][]string{{}, {"a"}, {"a", "b:c"}, {"it's", `q"uo\te`, "nul\x00x", "ünï", "bad\xff\xfeend", "{,}", "NULL", ""}} {
		got, _ := textArray(in).AppendQuery(schema.QueryGen{}, nil)
		want, _ := pgdialect.Array(in).AppendQuery(schema.QueryGen{}, nil)
		if string(got) != string(want) {
			t.Errorf("%q: got %s want %s", in, got, want)
		}
	}
}
