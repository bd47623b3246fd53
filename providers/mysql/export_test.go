package mysql

import (
	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/outboxsql"
)

// OutboxQueries returns the SQL of drv's outbox table, for tests that look
// at the statements the driver runs.
func OutboxQueries(drv *wharf.Driver) *outboxsql.Queries {
	return drv.Outbox().(*outboxsql.Outbox).Queries()
}

// ClaimSQL returns the locking SELECT of drv's claim for p: cols of up to
// p.Limit eligible rows, from available_at from on ("" for the whole claim
// index, as inside a caller's transaction).
func ClaimSQL(drv *wharf.Driver, p outboxsql.ClaimParams, cols, from string) (string, []any) {
	return OutboxQueries(drv).EligibleRows(p, cols, claimHint, " FOR UPDATE SKIP LOCKED", from)
}

// HeadSQL returns the claim's first statement, which finds where the
// claimable rows begin, for p (Now, and the cursor's From).
func HeadSQL(drv *wharf.Driver, p outboxsql.ClaimParams) (string, []any) {
	return headQuery(OutboxQueries(drv), p)
}

// CursorFrom returns where drv's next claim (of every topic) scans from
// when no scan from the start is due.
func CursorFrom(drv *wharf.Driver) string {
	return drv.Outbox().(*outboxsql.Outbox).CursorFrom(nil)
}
