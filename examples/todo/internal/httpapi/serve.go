package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/httpidempotency"
)

// HeaderRequestID is the response header carrying the request's ID, which
// the access log line and any failure logged for the request carry too.
const HeaderRequestID = "X-Request-Id"

// api is the handler New returns: the access log around the router.
type api struct {
	mux     *http.ServeMux
	h       *handler
	onRoute func(r *http.Request, route string)
}

type requestIDKey struct{}

// requestID returns the ID ServeHTTP gave the request of ctx.
func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// ServeHTTP gives the request an ID (a new UUIDv7, never one the client
// sent, so log lines cannot be forged or correlated by a client), routes it
// and logs one line when it is answered: method, path (never the query),
// status, duration, bytes and request ID — never bodies, headers or
// Idempotency-Keys.
func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := core.NewID()
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
	sw := &statusWriter{ResponseWriter: w}
	sw.Header().Set(HeaderRequestID, id)
	sw.Header().Set("X-Content-Type-Options", "nosniff")
	defer func() {
		p := recover()
		status := sw.status()
		if p != nil { // net/http logs the panic and drops the connection
			status = http.StatusInternalServerError
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
			slog.Duration("duration", time.Since(start)), slog.Int64("bytes", sw.bytes), slog.String("request_id", id),
		}
		if sw.Header().Get(httpidempotency.HeaderReplayed) == "true" {
			attrs = append(attrs, slog.Bool("replayed", true))
		}
		a.h.logger.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
		if p != nil {
			panic(p)
		}
	}()
	a.route(sw, r)
}

// route serves r with the mux, except that a request no route serves gets
// a JSON error: 404, or 405 with the mux's Allow header when the path
// exists with other methods.
func (a *api) route(w http.ResponseWriter, r *http.Request) {
	if _, pattern := a.mux.Handler(r); pattern != "" {
		if a.onRoute != nil {
			_, route, _ := strings.Cut(pattern, " ") // "POST /todos" → "/todos"
			a.onRoute(r, route)
		}
		a.mux.ServeHTTP(w, r)
		return
	}
	// Let the mux decide between 404 and 405 (and compute Allow), then
	// answer in the API's format instead of its plain text.
	probe := &headerProbe{header: make(http.Header)}
	h, _ := a.mux.Handler(r)
	h.ServeHTTP(probe, r)
	if probe.code == http.StatusMethodNotAllowed {
		allow := probe.header.Get("Allow")
		resp := errorResponse(http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("%s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, allow))
		resp.Header.Set("Allow", allow)
		a.h.send(w, r, resp)
		return
	}
	a.h.send(w, r, errorResponse(http.StatusNotFound, "not_found", fmt.Sprintf("no route for %s %s", r.Method, r.URL.Path)))
}

// headerProbe records the status and headers of the mux's own 404/405
// answer and drops its body.
type headerProbe struct {
	header http.Header
	code   int
}

func (p *headerProbe) Header() http.Header { return p.header }

func (p *headerProbe) WriteHeader(code int) {
	if p.code == 0 {
		p.code = code
	}
}

func (p *headerProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}

// statusWriter records the status and size of a response for the access
// log.
type statusWriter struct {
	http.ResponseWriter
	code  int
	bytes int64
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 && code >= 200 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// status is the status sent, 200 if the handler wrote nothing.
func (s *statusWriter) status() int {
	if s.code == 0 {
		return http.StatusOK
	}
	return s.code
}
