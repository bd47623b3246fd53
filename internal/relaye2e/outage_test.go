package relaye2e

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// cutProxy forwards TCP connections to a database server until it is cut:
// then it closes every connection and refuses new ones until restored, as
// a network partition or a server restart does.
type cutProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() { _ = ln.Close(); p.cut() })
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.track(c, s)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

func (p *cutProxy) track(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// cut closes every connection and refuses new ones.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// recordCounter counts the log records of each message, with the time of
// each.
type recordCounter struct {
	mu      sync.Mutex
	records map[string][]time.Time
}

func (c *recordCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *recordCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *recordCounter) WithGroup(string) slog.Handler            { return c }
func (c *recordCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records[r.Message] = append(c.records[r.Message], r.Time)
	return nil
}

// between counts the records of each message logged from from to to.
func (c *recordCounter) between(from, to time.Time) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for msg, times := range c.records {
		for _, at := range times {
			if !at.Before(from) && !at.After(to) {
				out[msg]++
			}
		}
	}
	return out
}

// TestRelayStaysReadableDuringAnOutage cuts the network between a busy
// relay and its database for six seconds: claims, completions and lease
// extensions all fail meanwhile. The relay logs each kind of failure once
// per relay.FailureLogInterval (not once per attempt), tells OnFailure
// about every one, and delivers every message once the database is back.
func TestRelayStaysReadableDuringAnOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a database away for six seconds")
	}
	for _, d := range dialects {
		if d.name == "SQLite" {
			continue // a file: nothing to take away over the network
		}
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			u, err := url.Parse(d.newDB(t))
			require.NoError(t, err)
			proxy := newCutProxy(t, u.Host)
			u.Host = proxy.addr()
			proxiedURL := u.String()

			logs := &recordCounter{records: map[string][]time.Time{}}
			drv := openWith(t, d.open, proxiedURL, wharf.Options{Logger: slog.New(logs)})
			const total = 300
			msgs := make([]ports.OutboxMessage, total)
			for i := range msgs {
				msgs[i] = ports.OutboxMessage{Topic: "outage", Payload: json.RawMessage(`{}`)}
			}
			_, err = drv.Outbox().Enqueue(ctx, msgs...)
			require.NoError(t, err)

			var handled, failures atomic.Int64
			hs := relay.NewHandlers()
			require.NoError(t, hs.Handle("outage", func(ctx context.Context, _ ports.ClaimedMessage) error {
				handled.Add(1)
				select { // work that outlasts a third of the lease: it gets extended
				case <-time.After(400 * time.Millisecond):
				case <-ctx.Done():
				}
				return nil
			}, relay.TopicOptions{}))
			r, err := relay.New(drv.Outbox(), hs, relay.Options{
				PollInterval: 20 * time.Millisecond, MaxPollInterval: 20 * time.Millisecond,
				Concurrency: 16, BatchSize: 16, Lease: time.Second, Logger: slog.New(logs),
				OnFailure: func(context.Context, relay.Failure) { failures.Add(1) },
			})
			require.NoError(t, err)
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- r.Run(runCtx) }()
			t.Cleanup(func() { stop(); <-done })

			require.Eventually(t, func() bool { return handled.Load() >= 16 }, 30*time.Second, 5*time.Millisecond,
				"the relay works before the outage")
			from := time.Now()
			proxy.cut()
			require.Eventually(t, func() bool { return time.Since(from) >= 6*time.Second }, 10*time.Second, 50*time.Millisecond)
			to := time.Now()
			proxy.restore()

			stats := drv.Outbox()
			require.Eventually(t, func() bool {
				st, err := stats.Stats(ctx)
				return err == nil && st.Total() == 0
			}, 90*time.Second, 50*time.Millisecond, "every message is delivered once the database is back")
			require.GreaterOrEqual(t, handled.Load(), int64(total))

			during := logs.between(from, to)
			relayRecords := 0
			for msg, n := range during {
				t.Logf("during the outage: %3d × %q", n, msg)
				if !strings.HasPrefix(msg, "relay: ") {
					continue
				}
				relayRecords += n
				// The first of a kind at once, then one per interval.
				require.LessOrEqual(t, n, 1+int((to.Sub(from))/relay.FailureLogInterval)+1, "records of %q", msg)
			}
			require.Positive(t, relayRecords, "the outage was logged")
			require.Greater(t, failures.Load(), int64(relayRecords), "OnFailure saw every failure, more than were logged")
		})
	}
}
