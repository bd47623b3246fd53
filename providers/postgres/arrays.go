package postgres

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/uptrace/bun/schema"

	"github.com/wharf-go/wharf/internal/outboxsql"
)

// textArray is a list argument of Complete and Release (see Settle): a
// text[] literal, '{"a","b"}', rendered as bun's
// pgdialect.Array renders a []string (NUL dropped, quote and backslash
// escaped in elements, the quote doubled for the string literal), byte by
// byte when the element is valid UTF-8, which IDs and tokens are.
type textArray []string

var _ schema.QueryAppender = textArray(nil)

// AppendQuery implements schema.QueryAppender.
func (a textArray) AppendQuery(_ schema.QueryGen, b []byte) ([]byte, error) {
	b = append(b, '\'', '{')
	for i, s := range a {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendElem(b, s)
	}
	return append(b, '}', '\''), nil
}

// appendElem appends s as a quoted array element inside a string literal.
func appendElem(b []byte, s string) []byte {
	b = append(b, '"')
	if !utf8.ValidString(s) {
		// Each invalid byte becomes U+FFFD, as ranging over s does in
		// pgdialect.
		var v []byte
		for _, r := range s {
			v = utf8.AppendRune(v, r)
		}
		s = string(v)
	}
	for j := 0; j < len(s); j++ {
		switch c := s[j]; c {
		case 0:
		case '\'':
			b = append(b, '\'', '\'')
		case '"', '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// column is one column of an Enqueue batch as an array literal: the
// column-th value of every row, each a string, an int or nil (NULL).
type column struct {
	rows   [][]any
	column int
}

var _ schema.QueryAppender = column{}

// AppendQuery implements schema.QueryAppender.
func (c column) AppendQuery(_ schema.QueryGen, b []byte) ([]byte, error) {
	b = append(b, '\'', '{')
	for i, r := range c.rows {
		if i > 0 {
			b = append(b, ',')
		}
		switch v := r[c.column].(type) {
		case nil:
			b = append(b, "NULL"...)
		case string:
			b = appendElem(b, v)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		default: // rows come from outboxsql's prepare: never reached
			return nil, fmt.Errorf("postgres: enqueue: column %d holds a %T; want a string, an int or nil", c.column, v)
		}
	}
	return append(b, '}', '\''), nil
}

// intColumns are the INTEGER columns in outboxsql.Columns order (attempts,
// max_attempts); every other column is TEXT.
var intColumns = map[int]bool{7: true, 8: true}

// insertArrays renders Enqueue's INSERT of several rows (see Insert) as one
// array per column, expanded by unnest:
//
//	INSERT INTO t (<Columns>) SELECT * FROM unnest('{...}'::text[], ..., '{...}'::int[], ...)
//
// The statement reaches the server as text (bun renders every argument), and
// the server parses 15 array literals far faster than 15 literals per row
// of a VALUES list (BENCHMARKS.md, tuning step 17). unnest expands the
// arrays side by side, row i of the result holding element i of each.
func insertArrays(table string, rows [][]any) (string, []any) {
	n := len(rows[0])
	var b strings.Builder
	b.WriteString("INSERT INTO " + table + " (" + outboxsql.Columns + ") SELECT * FROM unnest(")
	args := make([]any, n)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		if intColumns[i] {
			b.WriteString("?::int[]")
		} else {
			b.WriteString("?::text[]")
		}
		args[i] = column{rows: rows, column: i}
	}
	b.WriteString(")")
	return b.String(), args
}
