// Package httpapi is the todo app's JSON HTTP API (net/http with Go 1.22
// routing patterns). It translates HTTP to use-case calls and back; the
// Idempotency-Key header is handled by the framework's httpidempotency
// middleware, and the write handlers complete the key inside the use case's
// transaction so that key, row and event commit together.
//
// A request passes, outermost first: the access log (serve.go: a request
// ID, one log line per request), the router (JSON 404 and 405 with Allow),
// and on the write routes the Content-Type check (415) and the
// Idempotency-Key middleware, before the handler.
package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/examples/todo/internal/app"
	"github.com/wharf-go/wharf/examples/todo/internal/domain"
	"github.com/wharf-go/wharf/httpidempotency"
	"github.com/wharf-go/wharf/ports"
)

// Limits of the API.
const (
	// MaxBodyBytes bounds request bodies (64 KiB); larger ones are answered
	// 413.
	MaxBodyBytes = 64 << 10
	// DefaultLimit is the page size when ?limit= is absent.
	DefaultLimit = 20
	// MaxLimit is the largest ?limit= accepted; a larger one is answered
	// 400.
	MaxLimit = 100
)

// Options configures New.
type Options struct {
	// Service runs the use cases. Required.
	Service *app.Service
	// Idempotency is the store on the root database that the
	// Idempotency-Key middleware reserves keys in. Required.
	Idempotency ports.Idempotency
	// Ping reports whether the database answers (the pool's PingContext).
	// When a request fails with an error that is not known to be transient,
	// a failed ping tells an outage (503 with Retry-After) from a failure
	// (500). Nil: errors are classified by their type only.
	Ping func(ctx context.Context) error
	// Logger receives one access log line per request (info) and failures
	// (warn, error); nil discards.
	Logger *slog.Logger
	// OnRoute, when set, is called with each request the router serves and
	// the route it matched (the mux pattern without its method, such as
	// "/todos/{id}"), before the route's handler: for example to name the
	// request's trace span after the route.
	OnRoute func(r *http.Request, route string)
}

// New returns the API's handler:
//
//	POST   /todos                {"title": "..."} → 201 todo, Location
//	GET    /todos?limit&cursor   → 200 {"items": [...], "next_cursor": "..."|null}
//	GET    /todos/{id}           → 200 todo
//	POST   /todos/{id}/complete  → 200 todo
//	DELETE /todos/{id}           → 204
//	GET    /activity?limit&cursor → 200 {"items": [...], "next_cursor": ...}
//
// POST requests accept an Idempotency-Key header; POST /todos requires
// Content-Type: application/json (415 otherwise). Errors are
// {"error": {"code": "...", "message": "..."}} with a 4xx or 5xx status;
// every answer carries an X-Request-Id.
func New(opts Options) (http.Handler, error) {
	if opts.Service == nil {
		return nil, fmt.Errorf("httpapi: Options.Service is nil: %w", ports.ErrInvalidArgument)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{svc: opts.Service, logger: logger, ping: opts.Ping}
	idem, err := httpidempotency.New(httpidempotency.Options{
		Store:        opts.Idempotency,
		Namespace:    "todo-api",
		MaxBodyBytes: MaxBodyBytes,
		// The store down answers 503 like the handlers do (Options.Ping).
		Unavailable: h.unavailable,
		Logger:      logger,
		// An app with authentication scopes keys per caller, e.g.
		// Scope: func(r *http.Request) map[string]string { return map[string]string{"user": userID(r)} },
	})
	if err != nil {
		return nil, err
	}
	// Only the write routes take a key: the middleware wraps them, not the
	// mux, so a key sent to an unknown route or with a wrong method is never
	// reserved. No catch-all route either: it would turn the mux's 405
	// into a 404 (serve.go answers both in JSON).
	mux := http.NewServeMux()
	mux.Handle("POST /todos", h.requireJSON(true, idem.Wrap(http.HandlerFunc(h.createTodo))))
	mux.HandleFunc("GET /todos", h.listTodos)
	mux.HandleFunc("GET /todos/{id}", h.getTodo)
	mux.Handle("POST /todos/{id}/complete", h.requireJSON(false, idem.Wrap(http.HandlerFunc(h.completeTodo))))
	mux.HandleFunc("DELETE /todos/{id}", h.deleteTodo)
	mux.HandleFunc("GET /activity", h.listActivity)
	return &api{mux: mux, h: h, onRoute: opts.OnRoute}, nil
}

type handler struct {
	svc    *app.Service
	logger *slog.Logger
	ping   func(context.Context) error
}

// todoJSON is a todo on the wire. Timestamps are UTC, fixed width
// (core.TimeFormat).
type todoJSON struct {
	ID          string  `json:"id"`
	Title       string  `json:"title"`
	Completed   bool    `json:"completed"`
	CompletedAt *string `json:"completed_at"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
}

func toJSON(t domain.Todo) todoJSON {
	j := todoJSON{ID: t.ID, Title: t.Title, Completed: t.Completed(), CreatedAt: core.FormatTime(t.CreatedAt), UpdatedAt: core.FormatTime(t.UpdatedAt)}
	if t.Completed() {
		at := core.FormatTime(t.CompletedAt)
		j.CompletedAt = &at
	}
	return j
}

type activityJSON struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	TodoID     string `json:"todo_id"`
	Title      string `json:"title"`
	OccurredAt string `json:"occurred_at"`
}

type pageJSON[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

func (h *handler) createTodo(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Title string `json:"title"`
	}
	if resp, ok := decodeJSON(w, r, &in); !ok {
		h.send(w, r, resp)
		return
	}
	var resp httpidempotency.Response
	// One transaction: the use case joins it, and the idempotency key (if
	// the request has one) completes in it, so key, todo and event commit
	// together or not at all.
	err := h.svc.Transaction(r.Context(), func(ctx context.Context, tx app.TxPorts) error {
		todo, err := h.svc.Create(ctx, in.Title)
		if err != nil {
			return err
		}
		if resp, err = httpidempotency.JSON(http.StatusCreated, toJSON(todo)); err != nil {
			return err
		}
		resp.Header.Set("Location", "/todos/"+todo.ID)
		return httpidempotency.Complete(ctx, tx.Idempotency, resp)
	})
	if err != nil {
		h.send(w, r, h.errorFor(r, err))
		return
	}
	h.send(w, r, resp)
}

func (h *handler) completeTodo(w http.ResponseWriter, r *http.Request) {
	var resp httpidempotency.Response
	err := h.svc.Transaction(r.Context(), func(ctx context.Context, tx app.TxPorts) error {
		todo, err := h.svc.Complete(ctx, r.PathValue("id"))
		if err != nil {
			return err
		}
		if resp, err = httpidempotency.JSON(http.StatusOK, toJSON(todo)); err != nil {
			return err
		}
		return httpidempotency.Complete(ctx, tx.Idempotency, resp)
	})
	if err != nil {
		h.send(w, r, h.errorFor(r, err))
		return
	}
	h.send(w, r, resp)
}

func (h *handler) deleteTodo(w http.ResponseWriter, r *http.Request) {
	// DELETE is idempotent by itself: a repeated call finds nothing and
	// answers 404, recording no second event.
	if _, err := h.svc.Delete(r.Context(), r.PathValue("id")); err != nil {
		h.send(w, r, h.errorFor(r, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *handler) getTodo(w http.ResponseWriter, r *http.Request) {
	todo, err := h.svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		h.send(w, r, h.errorFor(r, err))
		return
	}
	h.sendJSON(w, r, http.StatusOK, toJSON(todo))
}

func (h *handler) listTodos(w http.ResponseWriter, r *http.Request) {
	req, resp, ok := pageRequest(r)
	if !ok {
		h.send(w, r, resp)
		return
	}
	p, err := h.svc.List(r.Context(), req)
	if err != nil {
		h.send(w, r, h.errorFor(r, err))
		return
	}
	out := pageJSON[todoJSON]{Items: make([]todoJSON, len(p.Items)), NextCursor: encodeCursor(p.Next)}
	for i, t := range p.Items {
		out.Items[i] = toJSON(t)
	}
	h.sendJSON(w, r, http.StatusOK, out)
}

func (h *handler) listActivity(w http.ResponseWriter, r *http.Request) {
	req, resp, ok := pageRequest(r)
	if !ok {
		h.send(w, r, resp)
		return
	}
	p, err := h.svc.Activity(r.Context(), req)
	if err != nil {
		h.send(w, r, h.errorFor(r, err))
		return
	}
	out := pageJSON[activityJSON]{Items: make([]activityJSON, len(p.Items)), NextCursor: encodeCursor(p.Next)}
	for i, e := range p.Items {
		out.Items[i] = activityJSON{ID: e.ID, Type: e.Type, TodoID: e.TodoID, Title: e.Title, OccurredAt: core.FormatTime(e.OccurredAt)}
	}
	h.sendJSON(w, r, http.StatusOK, out)
}

// pageRequest parses ?limit= (1..MaxLimit, default DefaultLimit) and
// ?cursor= (a next_cursor this API returned).
func pageRequest(r *http.Request) (domain.PageRequest, httpidempotency.Response, bool) {
	q := r.URL.Query()
	req := domain.PageRequest{Limit: DefaultLimit}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			return req, errorResponse(http.StatusBadRequest, "invalid_limit",
				fmt.Sprintf("limit %q is not an integer between 1 and %d", s, MaxLimit)), false
		}
		req.Limit = n
	}
	if s := q.Get("cursor"); s != "" {
		pos, err := decodeCursor(s)
		if err != nil {
			return req, errorResponse(http.StatusBadRequest, "invalid_cursor",
				"cursor is not one this API returned; pass the next_cursor of the previous page unchanged, or omit it for the first page"), false
		}
		req.After = &pos
	}
	return req, httpidempotency.Response{}, true
}

// cursorVersion prefixes cursors so their format can change later.
const cursorVersion = "v1"

// encodeCursor renders a position as an opaque base64url token (nil for no
// next page).
func encodeCursor(p *domain.Position) *string {
	if p == nil {
		return nil
	}
	s := base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + "|" + core.FormatTime(p.At) + "|" + p.ID))
	return &s
}

func decodeCursor(s string) (domain.Position, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return domain.Position{}, err
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 3 || parts[0] != cursorVersion {
		return domain.Position{}, errors.New("malformed cursor")
	}
	at, err := core.ParseTime(parts[1])
	if err != nil {
		return domain.Position{}, err
	}
	if err := domain.ValidateID(parts[2]); err != nil {
		return domain.Position{}, err
	}
	return domain.Position{At: at, ID: parts[2]}, nil
}
