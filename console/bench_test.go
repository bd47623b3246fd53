package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/console"
	"github.com/wharf-go/wharf/console/internal/consoletest"
	"github.com/wharf-go/wharf/ports"
)

// BenchRowsEnv sets the backlog of BenchmarkPagesOnABacklog (PostgreSQL);
// unset, the benchmark is skipped (seeding a million rows takes a while).
const BenchRowsEnv = "WHARF_CONSOLE_BENCH_ROWS"

// seedBacklog inserts n messages straight into the outbox table with one
// INSERT … SELECT: 1% dead letters, 5% scheduled, the rest ready; 50
// topics, 1000 ordering keys.
func seedBacklog(b *testing.B, db consoletest.Database, n int) {
	b.Helper()
	q := `INSERT INTO outbox_messages (id, kind, topic, ordering_key, payload, headers, status, attempts, max_attempts,
	  available_at, locked_until, claim_token, last_error, created_at, updated_at)
	SELECT '01900000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'), 'event', 'topic.' || (g % 50), 'key-' || (g % 1000),
	  '{"order":' || g || ',"lines":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}],"note":"backlog"}', '{"traceparent":"00-1"}',
	  CASE WHEN g % 100 = 0 THEN 'dead' ELSE 'pending' END, CASE WHEN g % 100 = 0 THEN 10 ELSE 0 END, 10,
	  to_char((CASE WHEN g % 20 = 1 THEN now() + interval '1 day' ELSE now() - interval '2 hours' END) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
	  NULL, NULL, CASE WHEN g % 100 = 0 THEN 'handler: upstream timeout' END,
	  to_char((now() - interval '2 hours') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
	  to_char((now() - interval '1 hour') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
	FROM generate_series(1, ` + strconv.Itoa(n) + `) g`
	began := time.Now()
	_, err := db.Driver.DB().ExecContext(context.Background(), q)
	require.NoError(b, err)
	_, err = db.Driver.DB().ExecContext(context.Background(), "VACUUM ANALYZE outbox_messages")
	require.NoError(b, err)
	b.Logf("seeded %d messages in %v", n, time.Since(began).Round(time.Millisecond))
}

// BenchmarkPagesOnABacklog loads each page of the console, through HTTP as
// a browser would (body read whole), on a PostgreSQL outbox of
// WHARF_CONSOLE_BENCH_ROWS messages. "Uncounted" pages count the table on
// every request (a clock that jumps an hour each time); the others get the
// shared count, as every viewer does within Options.StatsInterval.
func BenchmarkPagesOnABacklog(b *testing.B) {
	n, _ := strconv.Atoi(os.Getenv(BenchRowsEnv))
	if n <= 0 {
		b.Skipf("set %s (e.g. 1000000) to run it", BenchRowsEnv)
	}
	db := consoletest.Open(b, "postgres")
	seedBacklog(b, db, n)
	ob := db.Driver.Outbox()
	began := time.Now()
	st, err := ob.Stats(context.Background())
	require.NoError(b, err)
	require.Equal(b, int64(n), st.Total(), "the backlog is there")
	b.Logf("one count of %d messages: %v (%+v)", n, time.Since(began).Round(time.Millisecond), st)
	last, err := ob.List(context.Background(), ports.OutboxFilter{Status: ports.StatusDead, AfterID: fmt.Sprintf("01900000-0000-7000-8000-%012x", n-200), Limit: 1000})
	require.NoError(b, err)
	lastDead := last[len(last)-1].ID

	serve := func(opts console.Options) string {
		c, err := console.New(opts)
		require.NoError(b, err)
		srv := httptest.NewServer(c)
		b.Cleanup(srv.Close)
		return srv.URL
	}
	opts := console.Options{Outbox: ob, Idempotency: db.Driver.Idempotency()}
	cached := serve(opts)
	var jump atomic.Int64
	opts.Now = func() time.Time { return time.Now().Add(time.Duration(jump.Add(int64(time.Hour)))) }
	uncounted := serve(opts)

	mid := fmt.Sprintf("01900000-0000-7000-8000-%012x", n/2)
	for _, tc := range []struct{ name, base, path string }{
		{"OverviewUncounted", uncounted, "/"},
		{"Overview", cached, "/"},
		{"Live", cached, "/live"},
		{"Messages", cached, "/messages"},
		{"MessagesMiddlePage", cached, "/messages?after=" + mid},
		{"MessagesPending", cached, "/messages?status=pending"},
		{"MessagesByTopic", cached, "/messages?topic=topic.7"},
		{"MessagesByKey", cached, "/messages?key=key-123"},
		{"MessagesByTopicWithNoMatch", cached, "/messages?topic=no.such.topic"},
		{"DeadLetters", cached, "/dead"},
		{"DeadLettersLastPage", cached, "/dead?after=" + lastDead},
		{"Message", cached, "/messages/" + mid},
		{"Idempotency", cached, "/idempotency"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			get := func() {
				res, err := http.Get(tc.base + tc.path)
				require.NoError(b, err)
				_, err = io.Copy(io.Discard, res.Body)
				require.NoError(b, err)
				_ = res.Body.Close()
				require.Equal(b, http.StatusOK, res.StatusCode)
			}
			get() // warm the count and the caches
			b.ResetTimer()
			for b.Loop() {
				get()
			}
		})
	}
}
