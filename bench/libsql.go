package main

import (
	"database/sql"
	"fmt"
	"reflect"
	"strings"

	"github.com/uptrace/bun"
)

// libSQL holds wharf's own statements for a table, taken from the library at
// run time so that the raw baseline issues exactly what wharf issues, with
// native placeholders instead of bun's interpolated arguments. The dialect's
// exported ClaimQuery (and Queries.ClaimSet) take an outboxsql.ClaimParams,
// a type in an internal package: it is built through reflection, with marker
// values that tell which argument is which. The complete statement is read
// from the Queries' unexported field the same way.
type libSQL struct {
	dialect   string
	table     string // quoted
	claim     string // bun template ('?' placeholders)
	claimArgs []argRef
	// MySQL: the UPDATE's index hint (Dialect.IDHint), SET clause and
	// arguments.
	idHint       string
	claimSet     string
	claimSetArgs []argRef
	complete     string // bun template: ... id IN (?) AND claim_token IN (?)
}

type argKind int

const (
	argConst argKind = iota
	argNow
	argUntil
	argPrefix
	argLimit
)

type argRef struct {
	kind argKind
	c    any
}

const (
	markNow    = "\x00now"
	markUntil  = "\x00until"
	markPrefix = "\x00prefix"
	markLimit  = 987654321
)

func classify(args []any) []argRef {
	out := make([]argRef, len(args))
	for i, a := range args {
		switch a {
		case markNow:
			out[i] = argRef{kind: argNow}
		case markUntil:
			out[i] = argRef{kind: argUntil}
		case markPrefix:
			out[i] = argRef{kind: argPrefix}
		case markLimit:
			out[i] = argRef{kind: argLimit}
		default:
			out[i] = argRef{kind: argConst, c: a}
		}
	}
	return out
}

func bindArgs(refs []argRef, prefix, until, now string, limit int) []any {
	out := make([]any, len(refs))
	for i, r := range refs {
		switch r.kind {
		case argNow:
			out[i] = now
		case argUntil:
			out[i] = until
		case argPrefix:
			out[i] = prefix
		case argLimit:
			out[i] = limit
		default:
			out[i] = r.c
		}
	}
	return out
}

// loadLibSQL builds an outbox for table on sqldb (no query is run) and
// extracts its statements.
func loadLibSQL(dialect string, sqldb *sql.DB, table string) (*libSQL, error) {
	b, err := binding(dialect)
	if err != nil {
		return nil, err
	}
	ob, err := b.NewOutbox(bun.NewDB(sqldb, b.Dialect()), table)
	if err != nil {
		return nil, err
	}
	qv := reflect.ValueOf(ob).MethodByName("Queries").Call(nil)[0] // *outboxsql.Queries
	fn := reflect.ValueOf(b.ClaimQuery)
	p := reflect.New(fn.Type().In(1)).Elem() // outboxsql.ClaimParams
	p.FieldByName("Now").SetString(markNow)
	p.FieldByName("LockedUntil").SetString(markUntil)
	p.FieldByName("TokenPrefix").SetString(markPrefix)
	p.FieldByName("Limit").SetInt(markLimit)
	out := fn.Call([]reflect.Value{qv, p})
	l := &libSQL{
		dialect:   dialect,
		table:     qv.MethodByName("Names").Call(nil)[0].FieldByName("Table").String(),
		claim:     out[0].String(),
		claimArgs: classify(out[1].Interface().([]any)),
		complete:  reflect.Indirect(qv).FieldByName("complete").String(),
	}
	if l.complete == "" {
		return nil, fmt.Errorf("could not read the complete statement from the library")
	}
	if dialect == "mysql" {
		// providers/mysql claim(): UPDATE t <IDHint> SET <ClaimSet(p,
		// "CONCAT(?, id)")> WHERE id IN (?), then SELECT Columns FROM t WHERE
		// id IN (?).
		if d := reflect.Indirect(reflect.ValueOf(ob)).FieldByName("dialect"); d.IsValid() && !d.IsNil() {
			if h := d.Elem().FieldByName("IDHint"); h.IsValid() {
				l.idHint = h.String()
			}
		}
		set := qv.MethodByName("ClaimSet").Call([]reflect.Value{p, reflect.ValueOf("CONCAT(?, id)")})
		l.claimSet = set[0].String()
		l.claimSetArgs = classify(set[1].Interface().([]any))
	}
	return l, nil
}

// native renders a bun template with the dialect's placeholders; the i-th
// '?' expands to counts[i] placeholders (an IN list), 1 when counts is
// shorter.
func native(dialect, tmpl string, counts ...int) string {
	var b strings.Builder
	n, k, inQuote := 0, 0, false
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if c == '\'' {
			inQuote = !inQuote
		}
		if c != '?' || inQuote {
			b.WriteByte(c)
			continue
		}
		m := 1
		if k < len(counts) {
			m = counts[k]
		}
		k++
		for j := 0; j < m; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			n++
			if dialect == "postgres" {
				fmt.Fprintf(&b, "$%d", n)
			} else {
				b.WriteByte('?')
			}
		}
	}
	return b.String()
}
