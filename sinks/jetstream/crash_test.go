package jetstream_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	wjs "github.com/wharf-go/wharf/sinks/jetstream"
)

// The child protocol: the test binary re-executes itself with these
// variables set, and the child runs a relay until it is killed.
const (
	envChild         = "WHARF_JS_CHILD"          // "relay": run a relay instead of the tests
	envChildOutbox   = "WHARF_JS_CHILD_OUTBOX"   // the outbox URL
	envChildNATS     = "WHARF_JS_CHILD_NATS"     // the NATS URL
	envChildHoldBack = "WHARF_JS_CHILD_HOLDBACK" // "true": never write completions
	lineReady        = "READY"
	childLease       = 30 * time.Second
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "relay" {
		if err := runChildRelay(); err != nil {
			fmt.Fprintln(os.Stderr, "child relay:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChildRelay relays topicPlaced to JetStream until the process is
// killed (or its stdin closes).
func runChildRelay() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadByte()
		cancel()
	}()
	drv, err := wharf.Open(ctx, os.Getenv(envChildOutbox), wharf.Options{})
	if err != nil {
		return err
	}
	defer drv.Close()
	nc, err := nats.Connect(os.Getenv(envChildNATS))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	pub, err := wjs.NewPublisher(js, wjs.Options{})
	if err != nil {
		return err
	}
	hs := relay.NewHandlers()
	if err := pub.Register(hs, relay.TopicOptions{}, topicPlaced); err != nil {
		return err
	}
	opts := relay.Options{BatchSize: 100, Concurrency: 64, Lease: childLease, PollInterval: 5 * time.Millisecond, MaxPollInterval: 50 * time.Millisecond}
	var ob ports.Outbox = drv.Outbox()
	if hold, _ := strconv.ParseBool(os.Getenv(envChildHoldBack)); hold {
		// The completions of published messages never reach the database
		// (as if the process died before each write): every one of them is
		// still in the outbox, leased, when the child dies.
		ob = unwrittenCompletions{ob}
	}
	r, err := relay.New(ob, hs, opts)
	if err != nil {
		return err
	}
	fmt.Println(lineReady)
	return r.Run(ctx)
}

// unwrittenCompletions is a real outbox whose Complete reports success
// without writing anything: the child's completions are lost, as in a
// crash between publishing and completing.
type unwrittenCompletions struct{ ports.Outbox }

func (unwrittenCompletions) Complete(context.Context, ...ports.Claim) error { return nil }

// syncBuffer is a bytes.Buffer safe for the child's writes and the test's
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startChildRelay starts a relay process and waits until it is ready. It
// is killed, if still running, when the test ends.
func startChildRelay(t testing.TB, outboxURL, natsURL string, holdBack bool) (*exec.Cmd, <-chan error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"=relay", envChildOutbox+"="+outboxURL, envChildNATS+"="+natsURL,
		envChildHoldBack+"="+strconv.FormatBool(holdBack))
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	// Kept open until the test ends: its closing would stop the child
	// gracefully.
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	ready, eof := make(chan struct{}), make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == lineReady {
				close(ready)
			}
		}
		close(eof)
	}()
	exited := make(chan error, 1)
	go func() {
		<-eof // Wait closes the pipe: read it to the end first
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = stdin.Close()
		if t.Failed() {
			t.Logf("child relay stderr:\n%s", stderr.String())
		}
	})
	select {
	case <-ready:
	case <-eof:
		require.FailNow(t, "the child relay exited before it was ready", stderr.String())
	case <-time.After(time.Minute):
		require.FailNow(t, "the child relay was not ready within a minute", stderr.String())
	}
	return cmd, exited
}

// TestKilledRelayMidDrain kills a relay process with SIGKILL while it
// publishes, then drains the rest with a fresh relay whose clock is past
// the dead one's lease: the stream holds every message exactly once, in key
// order. With completions held back, every message the killed relay
// published is still in the outbox, so the fresh relay publishes all of
// them again and the duplicate window must drop each copy.
func TestKilledRelayMidDrain(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name     string
		holdBack bool
	}{
		{name: "CompletionsWritten", holdBack: false},
		{name: "CompletionsHeldBack", holdBack: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const n = 3000
			srv := startNATS(t)
			_, js := connect(t, srv.url())
			st := createStream(t, js, "ORDERS", "order.>")
			url, drv := openOutbox(t, wharf.Options{})
			msgs := workload(n)
			ids := enqueue(t, drv.Outbox(), msgs)

			cmd, exited := startChildRelay(t, url, srv.url(), tt.holdBack)
			awaitCondition(t, time.Minute, "the child to publish 300 messages", func() (bool, string) {
				got := streamCount(t, st)
				return got >= 300, fmt.Sprintf("%d messages", got)
			})
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			var exitErr *exec.ExitError
			err := <-exited
			require.True(t, errors.As(err, &exitErr), "the child was killed: %v", err)
			ws, ok := exitErr.Sys().(syscall.WaitStatus)
			require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "killed by SIGKILL: %v", err)

			inStream := streamCount(t, st)
			stats, err := drv.Outbox().Stats(context.Background())
			require.NoError(t, err)
			require.Positive(t, stats.Pending(), "killed mid-drain")
			if tt.holdBack {
				require.EqualValues(t, n, stats.Pending(), "no completion was written")
				require.Less(t, inStream, uint64(n), "killed mid-drain")
			}

			// A fresh relay, in this process, whose clock is past the lease
			// of the messages the child held.
			offset := childLease + time.Second
			now := func() time.Time { return time.Now().Add(offset) }
			recovery := openDriver(t, url, wharf.Options{Now: now})
			pub, err := wjs.NewPublisher(js, wjs.Options{})
			require.NoError(t, err)
			hs := relay.NewHandlers()
			require.NoError(t, pub.Register(hs, relay.TopicOptions{}, topicPlaced))
			c := &counts{}
			opts := fastRelay(t, c)
			opts.Now = now
			stop := runRelays(t, []*wharf.Driver{recovery}, hs, opts)
			awaitEmpty(t, recovery.Outbox(), 3*time.Minute)
			stop()

			requireStreamHoldsEachOnceInKeyOrder(t, st, ids, msgs)
			require.EqualValues(t, stats.Pending(), c.delivered.Load(), "the fresh relay delivered what the child left")
			t.Logf("at the kill: %d messages in the stream, %d in the outbox (%d published but not completed, republished and dropped as duplicates)",
				inStream, stats.Pending(), int64(inStream)-(n-stats.Pending()))
		})
	}
}
