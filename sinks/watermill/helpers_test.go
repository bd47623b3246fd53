package watermill_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	_ "github.com/wharf-go/wharf/providers/sqlite"
)

const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracestate  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
)

// startNATS runs a real nats-server with JetStream in this process on
// 127.0.0.1 (a free port, its store in a temporary directory) until the
// test ends, and returns its URL.
func startNATS(t testing.TB) string {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: "wharf-test", Host: "127.0.0.1", Port: server.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
	})
	require.NoError(t, err)
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	require.True(t, srv.ReadyForConnections(30*time.Second), "nats-server ready")
	addr, ok := srv.Addr().(*net.TCPAddr)
	require.True(t, ok, "TCP listener: %v", srv.Addr())
	return fmt.Sprintf("nats://127.0.0.1:%d", addr.Port)
}

// openOutbox opens a migrated SQLite outbox in a file of the test's
// temporary directory.
func openOutbox(t testing.TB) *wharf.Driver {
	t.Helper()
	drv, err := wharf.Open(context.Background(), "file:"+filepath.Join(t.TempDir(), "outbox.db"), wharf.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	require.NoError(t, drv.Migrate(context.Background()))
	return drv
}

// workload returns n messages on topic; two in three carry one of keys
// ordering keys, and each payload holds its position.
func workload(n, keys int, topic string) []ports.OutboxMessage {
	msgs := make([]ports.OutboxMessage, n)
	for i := range msgs {
		key := ""
		if i%3 != 2 {
			key = fmt.Sprintf("customer-%d", i%keys)
		}
		msgs[i] = ports.OutboxMessage{
			Topic: topic, Key: key, Payload: fmt.Appendf(nil, `{"n":%d}`, i),
			Headers: map[string]string{"traceparent": traceparent, "tracestate": tracestate},
		}
	}
	return msgs
}

// runRelays runs n relays on drv's outbox until the outbox holds nothing
// (dead letters included), then stops them and returns how many messages
// they delivered.
func runRelays(t testing.TB, n int, drv *wharf.Driver, hs *relay.Handlers, opts relay.Options) int64 {
	t.Helper()
	var delivered atomic.Int64
	opts.Logger = testLogger(t)
	opts.Observer = func(_ context.Context, o relay.Observation) {
		if o.Outcome == relay.OutcomeDelivered {
			delivered.Add(1)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		r, err := relay.New(drv.Outbox(), hs, opts)
		require.NoError(t, err)
		wg.Go(func() { errs[i] = r.Run(ctx) })
	}
	deadline := time.Now().Add(2 * time.Minute)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		stats, err := drv.Outbox().Stats(context.Background())
		require.NoError(t, err)
		if stats.Total() == 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the outbox did not empty within 2 minutes: %+v", stats)
		<-tick.C
	}
	cancel()
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "relay %d", i)
	}
	return delivered.Load()
}

// testLogger logs warnings and errors to the test's log (shown when it
// fails). The relays it serves are stopped before their test ends.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
