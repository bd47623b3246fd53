package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/wharf-go/wharf/examples/todo/internal/domain"
	"github.com/wharf-go/wharf/httpidempotency"
	"github.com/wharf-go/wharf/ports"
)

// pingTimeout bounds the ping that tells an outage from a failure.
const pingTimeout = time.Second

// Retry-After of the 503 answers, in seconds: a busy database (a lock
// conflict) clears at once; an unreachable one takes longer.
const (
	retryAfterBusy        = "1"
	retryAfterUnavailable = "5"
)

// errorFor maps a use-case error to its answer; unexpected errors are
// logged and answered 500 without their details.
func (h *handler) errorFor(r *http.Request, err error) httpidempotency.Response {
	var verr *domain.ValidationError
	switch {
	case errors.As(err, &verr):
		return errorResponse(http.StatusBadRequest, "invalid_"+verr.Field, verr.Message)
	case errors.Is(err, domain.ErrNotFound):
		return errorResponse(http.StatusNotFound, "todo_not_found", fmt.Sprintf("no todo has the id %q", r.PathValue("id")))
	case errors.Is(err, ports.ErrRetryable) && !errors.Is(err, ports.ErrUnavailable):
		h.logFailure(r, slog.LevelWarn, "request failed on a database conflict", err)
		resp := errorResponse(http.StatusServiceUnavailable, "database_busy", "the database is busy; retry the request (with the same Idempotency-Key)")
		resp.Header.Set("Retry-After", retryAfterBusy)
		return resp
	case h.unavailable(r.Context(), err):
		h.logFailure(r, slog.LevelWarn, "request failed: the database is unavailable", err)
		resp := errorResponse(http.StatusServiceUnavailable, "database_unavailable", "the database is unavailable; retry the request in a few seconds (with the same Idempotency-Key)")
		resp.Header.Set("Retry-After", retryAfterUnavailable)
		return resp
	default:
		h.logFailure(r, slog.LevelError, "request failed", err)
		return errorResponse(http.StatusInternalServerError, "internal_error", "internal error; retry the request (with the same Idempotency-Key)")
	}
}

// unavailable reports whether err means the database cannot serve for now:
// an error known to be transient (a retryable conflict, a refused or broken
// connection: httpidempotency.IsUnavailable), or any error while the
// database does not answer a ping (a closed pool, a server that went away
// in a way the driver reports otherwise). The Idempotency-Key middleware
// uses it too, for its store's errors.
func (h *handler) unavailable(ctx context.Context, err error) bool {
	if httpidempotency.IsUnavailable(err) {
		return true
	}
	if h.ping == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pingTimeout)
	defer cancel()
	return h.ping(ctx) != nil
}

func (h *handler) logFailure(r *http.Request, level slog.Level, msg string, err error) {
	h.logger.LogAttrs(r.Context(), level, msg, slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.String("request_id", requestID(r.Context())), slog.Any("error", err))
}

// errorResponse is the API's error body, the same shape as the middleware's
// (httpidempotency.WriteJSONError).
func errorResponse(status int, code, message string) httpidempotency.Response {
	type body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	resp, err := httpidempotency.JSON(status, struct {
		Error body `json:"error"`
	}{body{code, message}})
	if err != nil { // cannot happen: two strings always encode
		panic(err)
	}
	return resp
}

func (h *handler) sendJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	resp, err := httpidempotency.JSON(status, v)
	if err != nil {
		resp = h.errorFor(r, err)
	}
	h.send(w, r, resp)
}

func (h *handler) send(w http.ResponseWriter, r *http.Request, resp httpidempotency.Response) {
	if err := resp.Write(w); err != nil {
		h.logger.LogAttrs(r.Context(), slog.LevelDebug, "response not fully written", slog.String("path", r.URL.Path),
			slog.String("request_id", requestID(r.Context())), slog.Any("error", err))
	}
}
