package jetstream_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
	_ "github.com/wharf-go/wharf/providers/sqlite"
)

// natsServer is a real nats-server with JetStream, run in this process on
// 127.0.0.1 with its store in a temporary directory. Restart stops it and
// starts it again on the same port and store, as a broker restart does.
type natsServer struct {
	storeDir string
	// syncAlways makes JetStream fsync every write, as the outbox's
	// database does every commit (the default syncs every 2 minutes).
	syncAlways bool
	mu         sync.Mutex
	port       int
	srv        *server.Server
}

// startNATS starts a server that is shut down when the test ends.
func startNATS(t testing.TB) *natsServer {
	t.Helper()
	return startNATSServer(t, &natsServer{})
}

// startNATSServer starts s (its zero value, or with syncAlways set) on a
// free port with a temporary store.
func startNATSServer(t testing.TB, s *natsServer) *natsServer {
	t.Helper()
	s.storeDir, s.port = t.TempDir(), server.RANDOM_PORT
	require.NoError(t, s.start())
	t.Cleanup(s.shutdown)
	return s
}

func (s *natsServer) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	srv, err := server.NewServer(&server.Options{
		ServerName: "wharf-test",
		Host:       "127.0.0.1",
		Port:       s.port,
		JetStream:  true,
		StoreDir:   s.storeDir,
		NoLog:      true,
		NoSigs:     true,
		SyncAlways: s.syncAlways,
	})
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return fmt.Errorf("nats-server on port %d not ready within 30s", s.port)
	}
	s.srv = srv
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		srv.Shutdown()
		return fmt.Errorf("nats-server listens on %v, not TCP", srv.Addr())
	}
	s.port = addr.Port
	return nil
}

func (s *natsServer) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// restart shuts the server down and starts it again on the same port and
// store directory.
func (s *natsServer) restart(t testing.TB) {
	t.Helper()
	s.shutdown()
	require.NoError(t, s.start(), "restart nats-server")
}

func (s *natsServer) url() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("nats://127.0.0.1:%d", s.port)
}

// connect returns a JetStream context on a connection that reconnects
// forever, closed when the test ends.
func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.Name(t.Name()))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return nc, js
}

// createStream creates a file-backed stream capturing subjects with the
// default duplicate window (2 minutes).
func createStream(t testing.TB, js jetstream.JetStream, name string, subjects ...string) jetstream.Stream {
	t.Helper()
	st, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: name, Subjects: subjects, Storage: jetstream.FileStorage})
	require.NoError(t, err)
	return st
}

// stored is one message read back from a stream.
type stored struct {
	seq     uint64
	subject string
	headers nats.Header
	data    []byte
}

// readStream returns every message of the stream in sequence order.
func readStream(t testing.TB, st jetstream.Stream) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	info, err := st.Info(ctx)
	require.NoError(t, err)
	want := int(info.State.Msgs)
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	out := make([]stored, 0, want)
	for len(out) < want {
		batch, err := cons.Fetch(min(want-len(out), 1000), jetstream.FetchMaxWait(5*time.Second))
		require.NoError(t, err)
		for m := range batch.Messages() {
			md, err := m.Metadata()
			require.NoError(t, err)
			out = append(out, stored{seq: md.Sequence.Stream, subject: m.Subject(), headers: m.Headers(), data: m.Data()})
		}
		require.NoError(t, batch.Error())
		require.NoError(t, ctx.Err(), "read %d of %d messages", len(out), want)
	}
	return out
}

// streamCount returns how many messages the stream holds.
func streamCount(t testing.TB, st jetstream.Stream) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	require.NoError(t, err)
	return info.State.Msgs
}

// openOutbox opens a migrated SQLite outbox in a file of the test's
// temporary directory and returns its URL and driver.
func openOutbox(t testing.TB, opts wharf.Options) (string, *wharf.Driver) {
	t.Helper()
	url := "file:" + filepath.Join(t.TempDir(), "outbox.db")
	drv := openDriver(t, url, opts)
	require.NoError(t, drv.Migrate(context.Background()))
	return url, drv
}

func openDriver(t testing.TB, url string, opts wharf.Options) *wharf.Driver {
	t.Helper()
	drv, err := wharf.Open(context.Background(), url, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	return drv
}

// enqueue stores msgs in batches and returns their IDs in order.
func enqueue(t testing.TB, ob ports.Outbox, msgs []ports.OutboxMessage) []string {
	t.Helper()
	ids := make([]string, 0, len(msgs))
	for i := 0; i < len(msgs); i += 500 {
		got, err := ob.Enqueue(context.Background(), msgs[i:min(i+500, len(msgs))]...)
		require.NoError(t, err)
		ids = append(ids, got...)
	}
	return ids
}
