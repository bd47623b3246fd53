package postgres

import (
	"context"
	"log/slog"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/internal/outboxsql"
)

// OutboxQueries returns the SQL of drv's outbox table, for tests that look
// at the statements the driver runs.
func OutboxQueries(drv *wharf.Driver) *outboxsql.Queries {
	return drv.Outbox().(*outboxsql.Outbox).Queries()
}

// ClaimSQL returns the claim statement that drv's outbox runs for p, for
// EXPLAIN.
func ClaimSQL(drv *wharf.Driver, p outboxsql.ClaimParams) (string, []any) {
	return claimQuery(OutboxQueries(drv), p, outboxsql.ClaimColumns)
}

// CursorFrom returns where drv's next claim (of every topic) scans from
// when no scan from the start is due.
func CursorFrom(drv *wharf.Driver) string {
	return drv.Outbox().(*outboxsql.Outbox).CursorFrom(nil)
}

// ErrNotificationsUnavailable is matched by the error of a Listen whose
// probe notification did not come back.
var ErrNotificationsUnavailable = errNotificationsUnavailable

// Listen runs Listen on a dialect of its own on drv's pool and outbox
// table, with Options.Listen.URL listenURL; stop ends its connection.
func Listen(ctx context.Context, drv *wharf.Driver, listenURL string) (ch <-chan struct{}, stop func(), err error) {
	d := &pgDialect{db: drv.DB(), log: slog.New(slog.DiscardHandler), hub: newListenHub(),
		listen: dialect.Listen{URL: listenURL, ApplicationName: "wharf-test-listener", PingInterval: wharf.DefaultListenPingInterval}}
	ch, err = d.Listen(ctx, OutboxQueries(drv))
	return ch, d.hub.shutdown, err
}
