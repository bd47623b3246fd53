package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/postgres"
)

// probeWarning is in the warning logged when the probe notification does
// not come back, and nowhere else.
const probeWarning = "did not reach the LISTEN connection"

// countLines returns how many of the recorded lines contain s.
func (r *logRecorder) countLines(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// runRelay runs a relay on ob that sends every handled message's ID to
// the returned channel; it polls every 50ms and stops when the test ends.
func runRelay(t *testing.T, ob ports.Outbox, logger *slog.Logger) <-chan string {
	t.Helper()
	handled := make(chan string, 16)
	hs := relay.NewHandlers()
	require.NoError(t, hs.Handle("t", func(_ context.Context, m ports.ClaimedMessage) error {
		handled <- m.ID
		return nil
	}, relay.TopicOptions{}))
	r, err := relay.New(ob, hs, relay.Options{PollInterval: 50 * time.Millisecond, MaxPollInterval: 50 * time.Millisecond, Logger: logger})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-stopped)
	})
	return handled
}

func requireHandled(t *testing.T, handled <-chan string, id, why string) {
	t.Helper()
	select {
	case got := <-handled:
		require.Equal(t, id, got, why)
	case <-time.After(mustArrive):
		require.FailNow(t, "the message was not handled within "+mustArrive.String(), why)
	}
}

// TestNotificationsBehindATransactionPooler: behind PgBouncer in
// transaction pooling mode LISTEN succeeds but its notifications never
// come. The probe notices: without Options.Listen.URL one warning names
// the proxy and the fix, however many relays start, and relays deliver by
// polling; with Listen.URL pointing at the server, notifications arrive.
func TestNotificationsBehindATransactionPooler(t *testing.T) {
	t.Parallel()
	f := routeNotifyFixture(t, pgbouncer)

	t.Run("WithoutListenURLOneWarningAndRelaysPoll", func(t *testing.T) {
		t.Parallel()
		f := routeNotifyFixture(t, pgbouncer) // its relays' table alone
		logs := &logRecorder{}
		logger := slog.New(logs)
		drv := newDriver(t, f.db, wharf.Options{Outbox: wharf.OutboxOptions{TableName: f.table}, Logger: logger})
		handled := runRelay(t, drv.Outbox(), logger)
		require.Eventually(t, func() bool { return logs.countLines("relay: running") == 1 }, mustArrive, 10*time.Millisecond,
			"the relay starts after its notifications were set up")
		require.Equal(t, 1, logs.countLines(probeWarning), logs.text())
		text := logs.text()
		require.Contains(t, text, "transaction-pooling proxy such as PgBouncer", "the warning names the likely cause")
		require.Contains(t, text, "wharf.Options.Listen.URL", "the warning names the fix")

		ids, err := f.producer.Outbox().Enqueue(f.ctx, msg("t"))
		require.NoError(t, err)
		requireHandled(t, handled, ids[0], "another driver's message is delivered by polling")

		// More relays and listeners of the same driver: no new probe, no new
		// warning, and same-process wake-ups still work.
		runRelay(t, drv.Outbox(), logger)
		require.Eventually(t, func() bool { return logs.countLines("relay: running") == 2 }, mustArrive, 10*time.Millisecond)
		ch := listenPartly(t, drv.Outbox()) // later listeners are told too, not handed a silent channel
		_, err = drv.Outbox().Enqueue(f.ctx, msg("u"))
		require.NoError(t, err)
		requireWake(t, ch, "the driver's own commit wakes its listeners")
		require.Equal(t, 1, logs.countLines(probeWarning), "the warning is logged once per driver:\n%s", logs.text())
	})
	t.Run("ListenReportsAMatchableError", func(t *testing.T) {
		t.Parallel()
		ch, stop, err := postgres.Listen(f.ctx, f.producer, "")
		defer stop()
		require.Nil(t, ch)
		require.ErrorIs(t, err, postgres.ErrNotificationsUnavailable)
		require.ErrorContains(t, err, probeWarning)
		require.ErrorContains(t, err, "wharf.Options.Listen.URL")
	})
	t.Run("ListenURLThroughTheProxyIsCaughtToo", func(t *testing.T) {
		t.Parallel()
		pooled := withDatabase(t, testdb.URL(t, testdb.PgBouncerEnv), f.name)
		_, stop, err := postgres.Listen(f.ctx, f.producer, pooled)
		defer stop()
		require.ErrorIs(t, err, postgres.ErrNotificationsUnavailable)
		require.ErrorContains(t, err, "wharf.Options.Listen.URL must reach the pool's database on the PostgreSQL server itself")
	})
	t.Run("WithListenURLNotificationsArrive", func(t *testing.T) {
		t.Parallel()
		logs := &logRecorder{}
		ob := f.outbox(t, wharf.Options{Logger: slog.New(logs), Listen: wharf.ListenOptions{URL: f.server}})
		ch, _ := listen(t, ob)
		for i := range 3 {
			f.enqueue(t)
			requireWake(t, ch, fmt.Sprintf("notification %d of a commit made through PgBouncer", i))
		}
		require.NotContains(t, logs.text(), probeWarning)
	})
}

// TestProbeCatchesAListenURLOnAnotherDatabase: notifications do not cross
// databases, so a Listen.URL that reaches the right server but another
// database would never wake anyone; the probe says so.
func TestProbeCatchesAListenURLOnAnotherDatabase(t *testing.T) {
	t.Parallel()
	f := newNotifyFixture(t)
	_, stop, err := postgres.Listen(f.ctx, f.producer, baseURL(t))
	defer stop()
	require.ErrorIs(t, err, postgres.ErrNotificationsUnavailable)
	require.ErrorContains(t, err, "or to another database")

	ch, stop, err := postgres.Listen(f.ctx, f.producer, f.server)
	defer stop()
	require.NoError(t, err, "the same database on the same server")
	require.NotNil(t, ch)
}

// TestQueryExecModesThroughPgBouncer runs concurrent enqueues, claims and
// completions through PgBouncer in transaction pooling mode with each of
// pgx's query modes that keep no statement on a server connection between
// transactions (docs/poolers.md); cache_statement and describe_exec do and
// are not supported behind a transaction pooler.
func TestQueryExecModesThroughPgBouncer(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"simple_protocol", "exec", "cache_describe"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			d := newDatabase(t, pgbouncer)
			drv := openDriver(t, withParam(t, d.url, "default_query_exec_mode", mode), wharf.Options{})
			require.NoError(t, drv.Migrate(ctx))
			ob := drv.Outbox()
			const workers, perWorker = 4, 50
			var wg sync.WaitGroup
			errs := make(chan error, workers)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perWorker {
						if _, err := ob.Enqueue(ctx, msg(fmt.Sprintf("w%d", w))); err != nil {
							errs <- fmt.Errorf("enqueue %d: %w", i, err)
							return
						}
						got, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 1, Lease: time.Minute})
						if err != nil {
							errs <- fmt.Errorf("claim %d: %w", i, err)
							return
						}
						for _, m := range got {
							if err := ob.Complete(ctx, m.Claim()); err != nil {
								errs <- fmt.Errorf("complete %d: %w", i, err)
								return
							}
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			left, err := ob.Claim(ctx, ports.ClaimOptions{Limit: workers * perWorker, Lease: time.Minute})
			require.NoError(t, err)
			claims := make([]ports.Claim, len(left))
			for i, m := range left {
				claims[i] = m.Claim()
			}
			if len(claims) > 0 {
				require.NoError(t, ob.Complete(ctx, claims...))
			}
			st, err := ob.Stats(ctx)
			require.NoError(t, err)
			require.Zero(t, st.Total(), "every message enqueued through the pooler was claimed and completed")
		})
	}
}
