package postgres

import (
	"strings"
	"testing"

	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/schema"

	"github.com/wharf-go/wharf/internal/outboxsql"
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

// TestColumn: an Enqueue column renders its strings as textArray does, nil
// as NULL and ints as numbers.
func TestColumn(t *testing.T) {
	rows := [][]any{{"it's", 1, nil}, {`q"uo\te`, 20, "{,}"}, {"bad\xffend", -3, "NULL"}}
	for i, want := range []string{
		`'{"it''s","q\"uo\\te","bad` + "\uFFFD" + `end"}'`,
		`'{1,20,-3}'`,
		`'{NULL,"{,}","NULL"}'`,
	} {
		got, err := column{rows: rows, column: i}.AppendQuery(schema.QueryGen{}, nil)
		if err != nil || string(got) != want {
			t.Errorf("column %d: got %s, %v; want %s", i, got, err, want)
		}
	}
	strs, _ := column{rows: rows, column: 0}.AppendQuery(schema.QueryGen{}, nil)
	arr, _ := textArray{"it's", `q"uo\te`, "bad\xffend"}.AppendQuery(schema.QueryGen{}, nil)
	if string(strs) != string(arr) {
		t.Errorf("strings: column %s, textArray %s", strs, arr)
	}
}

// TestIntColumns: the columns insertArrays casts to int[] are the INTEGER
// columns of outboxsql.Columns, and prepare puts ints there.
func TestIntColumns(t *testing.T) {
	cols := strings.Split(outboxsql.Columns, ", ")
	for i, c := range cols {
		if want := c == "attempts" || c == "max_attempts"; intColumns[i] != want {
			t.Errorf("column %d (%s): int[] %v, want %v", i, c, intColumns[i], want)
		}
	}
	if len(intColumns) != 2 {
		t.Errorf("intColumns %v: want attempts and max_attempts", intColumns)
	}
}
