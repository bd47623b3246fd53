package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

// queryLogTests cover wharf.Options.QueryLog.
func queryLogTests() []testCase {
	return []testCase{
		{"QueryLogNeverShowsParameterValuesUnlessAskedTo", testQueryLogRedacts},
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testQueryLogRedacts runs every kind of statement with a secret as a
// parameter value — the outbox's, the idempotency store's, a unit of
// work's, the application's own through bun, and a statement that fails
// (a duplicate key, whose error some databases quote) — with the query log
// at debug level: the secret appears in no record, unless ShowParameters
// is set.
func testQueryLogRedacts(t *testing.T, h Harness) {
	const secret = "s3cr3t-t0ken-42"
	run := func(t *testing.T, show bool) string {
		f := setup(t, h)
		f.createItems()
		logs := &syncBuffer{}
		opts := f.options(config{now: time.Now})
		opts.QueryLog = wharf.QueryLogOptions{Enabled: true, ShowParameters: show,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
		drv, err := h.NewDriver(f.db, opts)
		require.NoError(t, err)
		t.Cleanup(func() { _ = drv.Close() })
		ctx := f.ctx

		ob := drv.Outbox()
		_, err = ob.Enqueue(ctx, ports.OutboxMessage{Topic: "conf.log", Key: secret, Payload: json.RawMessage(`{"token":"` + secret + `"}`),
			Headers: map[string]string{"authorization": secret}})
		require.NoError(t, err)
		msgs, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 10, Lease: time.Minute})
		require.NoError(t, err)
		require.Len(t, msgs, 1)
		require.NoError(t, ob.Complete(ctx, msgs[0].Claim()))
		_, err = drv.Idempotency().Reserve(ctx, reserveReq("conf.log", secret, secret))
		require.NoError(t, err)
		uow := f.txUnitOfWork(drv, wharf.UnitOfWorkOptions{})
		require.NoError(t, uow.Transaction(ctx, func(ctx context.Context, tx wharf.Tx) error {
			return insertItem(ctx, tx.DB, secret, secret)
		}))
		var n int
		require.NoError(t, drv.DB().NewSelect().TableExpr("conf_items").ColumnExpr("COUNT(*)").Where("name = ?", secret).Scan(ctx, &n))
		require.Equal(t, 1, n)
		// A value ending in a backslash must not end its string early in the
		// redactor and expose the literal after it.
		require.NoError(t, drv.DB().NewSelect().TableExpr("conf_items").ColumnExpr("COUNT(*)").
			Where("name = ? OR name = ?", `C:\dir\`, secret).Scan(ctx, &n))
		require.Equal(t, 1, n)
		require.Error(t, insertItem(ctx, drv.DB(), secret, "again"), "a duplicate key fails")

		text := logs.String()
		require.Contains(t, text, "port=outbox.claim", "the outbox's statements are logged with their port")
		require.Contains(t, text, "port=idempotency.reserve")
		require.Contains(t, text, "port=application", "the application's own statements are logged too")
		require.Contains(t, text, "dialect="+drv.Dialect())
		require.Contains(t, text, `msg="wharf: query failed"`, "the failed statement is logged")
		require.Contains(t, text, "error_class=", "with its error classified")
		return text
	}
	t.Run("Redacted", func(t *testing.T) {
		text := run(t, false)
		require.NotContains(t, text, secret, "no parameter value in any record")
		require.NotContains(t, strings.ToLower(text), strings.ToLower(secret))
	})
	t.Run("ShownWhenAskedTo", func(t *testing.T) {
		require.Contains(t, run(t, true), secret, "ShowParameters shows the values: the redacted run proves something")
	})
}
