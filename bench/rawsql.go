package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// The raw baseline's claim and complete statements, written out by hand:
// the same texts wharf's providers issue for an outbox table (the shared
// eligibility subquery and claim SET clause of internal/outboxsql, each
// dialect's claim around them), as bun templates with '?' placeholders that
// native renders with the dialect's own. Keep them in step with the
// library when its statements change.

// leaseExpiredError is the last_error a claim stamps on a message whose
// lease expired on its final attempt (outboxsql.LeaseExpiredError).
const leaseExpiredError = "lease expired on the final attempt (worker crashed or too slow)"

// mysqlPKHint pins MySQL's statements by ID to the primary key, as
// providers/mysql does.
const mysqlPKHint = " FORCE INDEX (PRIMARY)"

// claimIndex is the unquoted name of the table's claim index: prefixed by
// the table name on SQLite and PostgreSQL (index names are per schema
// there), plain on MySQL (per table).
func (r rawSQL) claimIndex() string {
	if r.dialect == "mysql" {
		return "claim_idx"
	}
	return r.base + "_claim_idx"
}

// eligible is the eligibility subquery: cols of up to LIMIT claimable
// messages in claim order from the claim cursor on, skipping keys with an
// earlier pending message. hint follows the table reference, suffix
// follows LIMIT. Arguments: now, now, from (the cursor; "" scans from the
// start), limit.
func (r rawSQL) eligible(cols, hint, suffix string) string {
	return "SELECT " + cols + " FROM " + r.table + " AS c" + hint +
		" WHERE c.status = 'pending' AND c.available_at <= ? AND (c.locked_until IS NULL OR c.locked_until <= ?)" +
		" AND c.available_at >= ?" +
		" AND (c.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM " + r.table +
		" AS e WHERE e.ordering_key = c.ordering_key AND e.status = 'pending' AND e.id < c.id))" +
		" ORDER BY c.available_at, c.id LIMIT ?" + suffix
}

// claimColumns is what wharf's PostgreSQL and MariaDB claims read back
// (outboxsql.ClaimColumns): the columns without the three the claim set.
const claimColumns = "id, kind, topic, ordering_key, payload, headers, status, attempts, max_attempts, available_at, last_error, created_at"

// head (MariaDB) finds where the claimable rows begin, without locks, as
// providers/mysql's headQuery. Arguments: now, now, from.
func (r rawSQL) head() string {
	return "SELECT available_at FROM " + r.table + " FORCE INDEX (" + r.claimIndex() + ")" +
		" WHERE status = 'pending' AND available_at <= ? AND (locked_until IS NULL OR locked_until <= ?) AND available_at >= ?" +
		" ORDER BY available_at, id LIMIT 1"
}

// claimSet is the claim's SET clause: a token, a lease and one more attempt,
// or dead letter when the lease expired on the final attempt. concat
// renders "prefix || id". Arguments: setArgs.
func (r rawSQL) claimSet() string {
	const final = "attempts >= max_attempts"
	concat := "? || id"
	if r.dialect == "mysql" {
		concat = "CONCAT(?, id)"
	}
	return "status = CASE WHEN " + final + " THEN 'dead' ELSE 'pending' END," +
		" claim_token = CASE WHEN " + final + " THEN NULL ELSE " + concat + " END," +
		" locked_until = CASE WHEN " + final + " THEN NULL ELSE ? END," +
		" last_error = CASE WHEN " + final + " THEN ? ELSE last_error END," +
		" updated_at = ?," +
		" attempts = CASE WHEN " + final + " THEN attempts ELSE attempts + 1 END"
}

func setArgs(prefix, until, now string) []any {
	return []any{prefix, until, leaseExpiredError, now}
}

// claim is the claim's first statement. SQLite and PostgreSQL claim in one
// UPDATE ... RETURNING (SQLite forces the claim index and returns every
// column; PostgreSQL locks with SKIP LOCKED, see providers/postgres for
// the ARRAY and the rows hint, and returns claimColumns); on MySQL it
// locks the claimable rows from where head found them to begin with FOR
// UPDATE SKIP LOCKED, reading claimColumns, and claimUpdate follows in the
// same transaction.
func (r rawSQL) claim() string {
	switch r.dialect {
	case "sqlite":
		return "UPDATE " + r.table + " SET " + r.claimSet() +
			" WHERE id IN (" + r.eligible("c.id", ` INDEXED BY "`+r.claimIndex()+`"`, "") + ") RETURNING " + columns
	case "postgres":
		return "UPDATE " + r.table + " SET " + r.claimSet() +
			" WHERE id = ANY(ARRAY(" + r.eligible("c.id", " CROSS JOIN generate_series(1, (SELECT 1)) AS rows_hint", " FOR UPDATE OF c SKIP LOCKED") +
			")) RETURNING " + claimColumns
	default:
		return r.eligible(claimColumns, " FORCE INDEX ("+r.claimIndex()+")", " FOR UPDATE SKIP LOCKED")
	}
}

// claimArgs are claim's arguments.
func (r rawSQL) claimArgs(prefix, until, now, from string, limit int) []any {
	if r.dialect == "mysql" {
		return []any{now, now, from, limit}
	}
	return append(setArgs(prefix, until, now), now, now, from, limit)
}

// claimUpdate (MySQL) claims the selected IDs. Arguments: setArgs, then
// the IDs (an IN list).
func (r rawSQL) claimUpdate() string {
	return "UPDATE " + r.table + mysqlPKHint + " SET " + r.claimSet() + " WHERE id IN (?)"
}

// complete deletes completed messages, fenced by their claim tokens.
// Arguments: the IDs and the tokens (two IN lists).
func (r rawSQL) complete() string {
	if r.dialect == "mysql" {
		return "DELETE " + r.table + " FROM " + r.table + mysqlPKHint + " WHERE id IN (?) AND claim_token IN (?)"
	}
	return "DELETE FROM " + r.table + " WHERE id IN (?) AND claim_token IN (?)"
}

// newToken returns a claim's random token prefix, as the library makes
// them (128 random bits in hex).
func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
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
