package sqlite

import (
	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/outboxsql"
)

// OutboxQueries returns the SQL of drv's outbox table, for tests that look
// at the statements the driver runs.
func OutboxQueries(drv *wharf.Driver) *outboxsql.Queries {
	return drv.Outbox().(*outboxsql.Outbox).Queries()
}

// ClaimSQL returns the claim statement that drv's outbox runs for p, for
// EXPLAIN QUERY PLAN.
func ClaimSQL(drv *wharf.Driver, p outboxsql.ClaimParams) (string, []any) {
	return claimQuery(OutboxQueries(drv), p)
}
