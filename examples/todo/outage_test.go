package main

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/httpidempotency"
)

// tcpProxy forwards connections from a loopback port to a database server,
// so that a test can take the database away: Stop closes the port and
// every connection through it, as a server that goes down does.
type tcpProxy struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	stopped bool
	wg      sync.WaitGroup
}

// startProxy forwards a new loopback port to upstream (host:port) until
// Stop or the end of the test.
func startProxy(t *testing.T, upstream string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, upstream: upstream, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Stop)
	return p
}

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // stopped
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !p.track(c, up) {
			return
		}
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

// track registers a connection pair, or closes it if the proxy stopped.
func (p *tcpProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// Stop closes the port (new connections are refused) and every open
// connection, and waits for the copying goroutines. It is idempotent.
func (p *tcpProxy) Stop() {
	p.mu.Lock()
	if !p.stopped {
		p.stopped = true
		_ = p.ln.Close()
		for c := range p.conns {
			_ = c.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// TestTodoAppDatabaseOutage takes the database away from a running app: on
// SQLite the pool is closed, on PostgreSQL and MariaDB the server's port
// closes and every connection drops. Every request that needs the database
// is then answered 503 with Retry-After — with an Idempotency-Key or not —
// rather than 500.
func TestTodoAppDatabaseOutage(t *testing.T) {
	t.Parallel()
	for _, d := range dialects() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			var a *testApp
			var stop func()
			if d.dialect == "sqlite" {
				a = startApp(t, d)
				stop = func() { require.NoError(t, a.srv.drv.DB().Close()) }
			} else {
				u, err := url.Parse(d.database(t))
				require.NoError(t, err)
				proxy := startProxy(t, u.Host)
				u.Host = proxy.ln.Addr().String()
				a = startAppOn(t, d, u.String(), testLogger(t))
				stop = proxy.Stop
			}
			id := a.create("before the outage", nil).ID
			// Let the relay deliver first, so that it holds no claim when the
			// database goes (its final completion would fail, rightly, and
			// fail the shutdown).
			a.awaitDelivered()
			stop()

			tests := []struct {
				name, method, path, body string
				header                   map[string]string
				wantCode, wantRetryAfter string
			}{
				{"List", http.MethodGet, "/todos", "", nil, "database_unavailable", "5"},
				{"Get", http.MethodGet, "/todos/" + id, "", nil, "database_unavailable", "5"},
				{"Activity", http.MethodGet, "/activity", "", nil, "database_unavailable", "5"},
				{"Create", http.MethodPost, "/todos", `{"title":"during the outage"}`, nil, "database_unavailable", "5"},
				{"CreateWithKey", http.MethodPost, "/todos", `{"title":"during the outage"}`, key("outage-1"), httpidempotency.CodeUnavailable, "1"},
				{"Complete", http.MethodPost, "/todos/" + id + "/complete", "", nil, "database_unavailable", "5"},
				{"CompleteWithKey", http.MethodPost, "/todos/" + id + "/complete", "", key("outage-2"), httpidempotency.CodeUnavailable, "1"},
				{"Delete", http.MethodDelete, "/todos/" + id, "", nil, "database_unavailable", "5"},
			}
			for _, tt := range tests {
				r := a.mustDo(tt.method, tt.path, tt.body, tt.header)
				require.Equal(t, http.StatusServiceUnavailable, r.status, "%s: %s", tt.name, r.body)
				require.Equal(t, tt.wantRetryAfter, r.header.Get("Retry-After"), tt.name)
				require.Equal(t, tt.wantCode, r.errorCode(t), tt.name)
			}
			// Requests that need no database still work.
			r := a.mustDo(http.MethodPut, "/todos", "", nil)
			require.Equal(t, http.StatusMethodNotAllowed, r.status)
			r = a.mustDo(http.MethodPost, "/todos", `{"title":"x"}`, map[string]string{"Content-Type": "text/plain"})
			require.Equal(t, http.StatusUnsupportedMediaType, r.status)
		})
	}
}
