package httpidempotency

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/ports"
)

// Header names.
const (
	// HeaderKey is the request header carrying the idempotency key.
	HeaderKey = "Idempotency-Key"
	// HeaderReplayed is set to "true" on a replayed response.
	HeaderReplayed = "Idempotent-Replayed"
)

// Defaults of Options.
const (
	// DefaultNamespace is the idempotency namespace when Options.Namespace
	// is empty.
	DefaultNamespace = "http"
	// DefaultMaxBodyBytes bounds the request body read for the fingerprint
	// when Options.MaxBodyBytes is zero (1 MiB).
	DefaultMaxBodyBytes int64 = 1 << 20
	// retryAfterSeconds is the Retry-After of 409 and 503 answers.
	retryAfterSeconds = "1"
)

// Error codes of the answers the middleware gives instead of running the
// handler (Error.Code).
const (
	// CodeKeyMissing: Options.Required is set and the request has no key (400).
	CodeKeyMissing = "idempotency_key_missing"
	// CodeKeyInvalid: the key is malformed or sent more than once (400).
	CodeKeyInvalid = "idempotency_key_invalid"
	// CodeKeyInUse: a request with the same key is still running (409).
	CodeKeyInUse = "idempotency_key_in_use"
	// CodeKeyReused: the key was used with a different request (422).
	CodeKeyReused = "idempotency_key_reused"
	// CodeBodyTooLarge: the body exceeds Options.MaxBodyBytes (413).
	CodeBodyTooLarge = "request_too_large"
	// CodeBodyUnreadable: the request body could not be read (400).
	CodeBodyUnreadable = "request_body_unreadable"
	// CodeUnavailable: the store is busy or cannot be reached for now
	// (503, with Retry-After); see Options.Unavailable.
	CodeUnavailable = "idempotency_store_busy"
	// CodeInternal: the store failed or holds an unreadable record (500).
	CodeInternal = "internal_error"
)

// DefaultMethods returns the methods that take a key when Options.Methods
// is empty: POST and PATCH.
func DefaultMethods() []string { return []string{http.MethodPost, http.MethodPatch} }

// DefaultReplayHeaders returns the response headers stored and replayed when
// Options.ReplayHeaders is empty: representation metadata that is safe to
// repeat (never Set-Cookie, Date, or hop-by-hop headers).
func DefaultReplayHeaders() []string {
	return []string{"Content-Type", "Content-Language", "Content-Location", "Location", "ETag", "Last-Modified"}
}

// Error is an answer the middleware gives instead of running the handler
// (malformed key, key in use or reused, body too large, store failure).
type Error struct {
	// Status is the HTTP status code.
	Status int
	// Code is one of the Code constants, stable for clients to test.
	Code string
	// Message explains the problem to a person.
	Message string
}

// Error implements error.
func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// WriteJSONError is the default Options.ErrorWriter: it answers e.Status
// with the body {"error":{"code":e.Code,"message":e.Message}} as
// application/json.
func WriteJSONError(w http.ResponseWriter, _ *http.Request, e *Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	type body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	_ = json.NewEncoder(w).Encode(struct {
		Error body `json:"error"`
	}{body{e.Code, e.Message}})
}

// Options configures New.
type Options struct {
	// Store reserves, completes and releases keys. Required. It should work
	// on the root database (not a transaction): the reservation must commit
	// at once so that concurrent retries see it. See the package doc for
	// completing inside the handler's transaction instead.
	Store ports.Idempotency
	// Namespace separates this API's keys from other users of the store.
	// Default DefaultNamespace ("http"); at most 255 characters.
	Namespace string
	// Methods are the request methods that take a key; requests with other
	// methods pass through untouched, key or not. Default DefaultMethods()
	// (POST, PATCH).
	Methods []string
	// Required makes the key mandatory on Methods: a request without one is
	// answered 400 (CodeKeyMissing). By default the key is optional and a
	// request without one passes through.
	Required bool
	// Scope returns the caller's scope (for example {"user": id}), so that
	// keys of different callers never collide and no caller sees another's
	// response. It runs after authentication middleware has put the caller in
	// the request. Nil means one global scope.
	Scope func(r *http.Request) map[string]string
	// ReplayHeaders are the response headers stored and replayed. Default
	// DefaultReplayHeaders().
	ReplayHeaders []string
	// Fingerprint identifies a request, so that a key reused with a
	// different request is answered 422. Default Fingerprint: method, path,
	// query and body, with JSON bodies compared as canonical JSON;
	// ExactFingerprint compares every body byte for byte.
	Fingerprint func(r *http.Request, body []byte) string
	// StoreClientErrors makes the middleware store and replay the 4xx
	// answers it sees, as it does 2xx and 3xx ones. By default a 4xx that
	// the handler did not complete in its transaction (Complete) releases
	// the key like a 5xx: a rejected request leaves no record behind, and a
	// corrected retry with the same key runs. A 4xx the handler completed
	// (a business outcome such as a declined payment) is kept either way.
	StoreClientErrors bool
	// Unavailable reports whether a store error means the store cannot
	// answer for now — busy or unreachable — so that the middleware answers
	// 503 with Retry-After (CodeUnavailable) rather than 500. Default
	// IsUnavailable.
	Unavailable func(ctx context.Context, err error) bool
	// MaxBodyBytes bounds the request body read for the fingerprint; a
	// larger body is answered 413. Default DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64
	// Lease is how long a reservation is held before a retry may take it
	// over (the handler must finish well within it); TTL is how long the key
	// and its response are kept. Zero means the store's defaults.
	Lease, TTL time.Duration
	// ErrorWriter writes the middleware's own answers; default
	// WriteJSONError.
	ErrorWriter func(w http.ResponseWriter, r *http.Request, e *Error)
	// Logger receives store failures (warn/error) and replays (debug); nil
	// discards.
	Logger *slog.Logger
}

// Middleware implements the Idempotency-Key header; see the package doc.
// It is safe for concurrent use.
type Middleware struct {
	store      ports.Idempotency
	namespace  string
	methods    map[string]bool
	required   bool
	scope      func(*http.Request) map[string]string
	allow      map[string]bool
	maxBody    int64
	lease, ttl time.Duration
	finger     func(*http.Request, []byte) string
	store4xx   bool
	unavail    func(context.Context, error) bool
	writeError func(http.ResponseWriter, *http.Request, *Error)
	logger     *slog.Logger
}

// New returns a middleware for opts. A nil store, an over-long namespace or
// a negative limit is an error matching ports.ErrInvalidArgument.
func New(opts Options) (*Middleware, error) {
	if opts.Store == nil {
		return nil, check.Invalidf("httpidempotency: Options.Store is nil; pass a driver's store (wharf.Driver.Idempotency)")
	}
	m := &Middleware{
		store: opts.Store, namespace: opts.Namespace, required: opts.Required, scope: opts.Scope,
		maxBody: opts.MaxBodyBytes, lease: opts.Lease, ttl: opts.TTL, writeError: opts.ErrorWriter, logger: opts.Logger,
		finger: opts.Fingerprint, store4xx: opts.StoreClientErrors, unavail: opts.Unavailable,
		methods: make(map[string]bool), allow: make(map[string]bool),
	}
	if m.namespace == "" {
		m.namespace = DefaultNamespace
	}
	if err := check.Length("httpidempotency: Options.Namespace", m.namespace); err != nil {
		return nil, err
	}
	if m.maxBody < 0 || m.lease < 0 || m.ttl < 0 {
		return nil, check.Invalidf("httpidempotency: MaxBodyBytes %d, Lease %v and TTL %v must not be negative (zero means the default)", m.maxBody, m.lease, m.ttl)
	}
	if m.maxBody == 0 {
		m.maxBody = DefaultMaxBodyBytes
	}
	methods := opts.Methods
	if len(methods) == 0 {
		methods = DefaultMethods()
	}
	for _, meth := range methods {
		m.methods[strings.ToUpper(meth)] = true
	}
	headers := opts.ReplayHeaders
	if len(headers) == 0 {
		headers = DefaultReplayHeaders()
	}
	for _, h := range headers {
		m.allow[http.CanonicalHeaderKey(h)] = true
	}
	if m.writeError == nil {
		m.writeError = WriteJSONError
	}
	if m.finger == nil {
		m.finger = Fingerprint
	}
	if m.unavail == nil {
		m.unavail = func(_ context.Context, err error) bool { return IsUnavailable(err) }
	}
	if m.logger == nil {
		m.logger = slog.New(slog.DiscardHandler)
	}
	return m, nil
}

// Wrap returns next behind the middleware.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(w, r, next)
	})
}

func (m *Middleware) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if !m.methods[r.Method] {
		next.ServeHTTP(w, r)
		return
	}
	values := r.Header.Values(HeaderKey)
	switch {
	case len(values) == 0 && m.required:
		m.fail(w, r, &Error{http.StatusBadRequest, CodeKeyMissing,
			fmt.Sprintf("%s %s requires an %s header; send a unique value (such as a UUID) and reuse it when you retry", r.Method, r.URL.Path, HeaderKey)})
		return
	case len(values) == 0:
		next.ServeHTTP(w, r)
		return
	case len(values) > 1:
		m.fail(w, r, &Error{http.StatusBadRequest, CodeKeyInvalid, fmt.Sprintf("the %s header is sent %d times; send it once", HeaderKey, len(values))})
		return
	}
	key, err := ParseKey(values[0])
	if err != nil {
		m.fail(w, r, &Error{http.StatusBadRequest, CodeKeyInvalid, strings.TrimSuffix(err.Error(), ": "+ports.ErrInvalidArgument.Error())})
		return
	}
	body, e := m.readBody(r)
	if e != nil {
		m.fail(w, r, e)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	req := ports.ReserveRequest{
		IdempotencyKey: ports.IdempotencyKey{Namespace: m.namespace, Key: key},
		Fingerprint:    m.finger(r, body),
		Lease:          m.lease,
		TTL:            m.ttl,
	}
	if m.scope != nil {
		req.Scope = m.scope(r)
	}
	res, err := m.store.Reserve(r.Context(), req)
	if err != nil {
		m.storeFailure(w, r, "reserve", err)
		return
	}
	switch res.Status {
	case ports.Replay:
		m.replay(w, r, res)
	case ports.InProgress:
		w.Header().Set("Retry-After", retryAfterSeconds)
		m.fail(w, r, &Error{http.StatusConflict, CodeKeyInUse,
			fmt.Sprintf("a request with this %s is still being processed; retry later with the same key to get its response", HeaderKey)})
	case ports.FingerprintMismatch:
		m.fail(w, r, &Error{http.StatusUnprocessableEntity, CodeKeyReused,
			fmt.Sprintf("this %s was already used with a different request (method, path or body); use a new key for a new request", HeaderKey)})
	case ports.Reserved:
		m.run(w, r, next, res)
	default:
		m.storeFailure(w, r, "reserve", fmt.Errorf("unexpected reserve status %v", res.Status))
	}
}

func (m *Middleware) readBody(r *http.Request) ([]byte, *Error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	tooLarge := &Error{http.StatusRequestEntityTooLarge, CodeBodyTooLarge,
		fmt.Sprintf("the request body is larger than %d bytes", m.maxBody)}
	if r.ContentLength > m.maxBody {
		return nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, m.maxBody+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, &Error{http.StatusBadRequest, CodeBodyUnreadable, "the request body could not be read: " + err.Error()}
	}
	if int64(len(body)) > m.maxBody {
		return nil, tooLarge
	}
	return body, nil
}

func (m *Middleware) fail(w http.ResponseWriter, r *http.Request, e *Error) {
	m.writeError(w, r, e)
}

func (m *Middleware) storeFailure(w http.ResponseWriter, r *http.Request, op string, err error) {
	if m.unavail(r.Context(), err) {
		m.logger.LogAttrs(r.Context(), slog.LevelWarn, "idempotency store unavailable",
			slog.String("op", op), slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
		w.Header().Set("Retry-After", retryAfterSeconds)
		m.fail(w, r, &Error{http.StatusServiceUnavailable, CodeUnavailable, "the idempotency store is busy or unreachable; retry with the same key"})
		return
	}
	m.logger.LogAttrs(r.Context(), slog.LevelError, "idempotency store failed",
		slog.String("op", op), slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
	m.fail(w, r, &Error{http.StatusInternalServerError, CodeInternal, "the idempotency key could not be checked; retry with the same key"})
}

func (m *Middleware) replay(w http.ResponseWriter, r *http.Request, res ports.Reservation) {
	sr, err := decode(res.Result)
	if err != nil {
		m.storeFailure(w, r, "replay", err)
		return
	}
	h := w.Header()
	for k, vs := range sr.Header {
		if m.allow[http.CanonicalHeaderKey(k)] {
			h[http.CanonicalHeaderKey(k)] = vs
		}
	}
	h.Set(HeaderReplayed, "true")
	m.logger.LogAttrs(r.Context(), slog.LevelDebug, "idempotent request replayed",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", sr.Status))
	w.WriteHeader(sr.Status)
	if len(sr.Body) > 0 {
		_, _ = w.Write(sr.Body)
	}
}

// state is the reservation of one request, carried in its context so that
// Complete can finish it inside the handler's transaction.
type state struct {
	res   ports.Reservation
	allow map[string]bool

	mu              sync.Mutex
	completed       bool
	completedStatus int
}

type stateKey struct{}

func (s *state) markCompleted(status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.completed, s.completedStatus = true, status
}

func (s *state) completion() (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.completed, s.completedStatus
}

func (m *Middleware) run(w http.ResponseWriter, r *http.Request, next http.Handler, res ports.Reservation) {
	st := &state{res: res, allow: m.allow}
	ctx := context.WithValue(r.Context(), stateKey{}, st)
	// Completing or releasing must happen even if the client went away.
	bg := context.WithoutCancel(ctx)
	rec := &recorder{w: w}
	finished := false
	defer func() {
		if !finished { // the handler panicked: let a retry run it again
			m.release(bg, r, st)
		}
	}()
	next.ServeHTTP(rec, r.WithContext(ctx))
	finished = true

	resp := rec.response()
	inTx, txStatus := st.completion()
	switch {
	case inTx && txStatus == resp.Status:
		// Completed in the handler's transaction, which committed (or the
		// handler would not answer what it completed).
	case resp.Status >= 500, resp.Status >= 400 && !m.store4xx:
		// Not stored: a retry runs the handler again. (A completion that
		// committed after all is kept; release notices.)
		m.release(bg, r, st)
	default:
		// Stored by the middleware. After a completion in a transaction
		// that answered differently, the store tells which one holds: a
		// rolled-back completion left the key reserved, and this response
		// is stored; a committed one wins.
		m.complete(bg, r, st, resp, inTx, txStatus)
	}
	rec.flush(resp)
}

// complete stores resp as the key's response. When the handler completed
// the key in its transaction with another status, a refusal because the
// key is no longer held means that completion committed: it is kept.
func (m *Middleware) complete(ctx context.Context, r *http.Request, st *state, resp Response, inTx bool, txStatus int) {
	raw, err := encode(resp, m.allow)
	if err == nil {
		err = m.store.Complete(ctx, st.res, raw)
	}
	switch {
	case err == nil:
	case inTx && errors.Is(err, ports.ErrIdempotencyMutation):
		m.logger.LogAttrs(ctx, slog.LevelWarn, "handler answered differently from the response it completed in its transaction; retries replay the completed one",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", resp.Status), slog.Int("completed_status", txStatus))
	default:
		m.logger.LogAttrs(ctx, slog.LevelError, "idempotent response not stored; a retry after the lease expires runs the request again",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", resp.Status), slog.Any("error", err))
	}
}

// release gives the key back (Fail) after a response that is not stored
// (a 5xx, or a 4xx the handler did not complete) or a panic. A reservation
// that the handler completed in a transaction which committed is no longer
// held; that is expected and kept.
func (m *Middleware) release(ctx context.Context, r *http.Request, st *state) {
	err := m.store.Fail(ctx, st.res)
	if err == nil {
		return
	}
	if errors.Is(err, ports.ErrIdempotencyMutation) {
		if inTx, _ := st.completion(); inTx {
			m.logger.LogAttrs(ctx, slog.LevelDebug, "idempotency key completed in a committed transaction before another answer; keeping it",
				slog.String("method", r.Method), slog.String("path", r.URL.Path))
			return
		}
		m.logger.LogAttrs(ctx, slog.LevelInfo, "idempotency reservation no longer held: its lease expired and a retry took the key over",
			slog.String("method", r.Method), slog.String("path", r.URL.Path))
		return
	}
	m.logger.LogAttrs(ctx, slog.LevelWarn, "idempotency key not released; retries get 409 until its lease expires",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Any("error", err))
}

// Complete stores resp as the response of the request's idempotency key
// through store, and is meant to be called inside the handler's
// transaction with a store bound to it (wharf.Tx.Idempotency in a unit of
// work), so that the key, the business rows and their outbox events commit
// or roll back together. See the package doc.
//
// It does nothing and returns nil when ctx carries no reservation (the
// request had no key, or its method takes none). resp must be what the
// handler then answers; only its allowed headers are stored. A 1xx or 5xx
// status is an error matching ports.ErrInvalidArgument (return an error
// from the transaction instead). An error from the store — notably one
// matching ports.ErrIdempotencyMutation when the lease expired and a retry
// took the key over — must roll the transaction back. Complete may be called
// again when a unit of work re-runs the transaction after a retryable
// conflict.
func Complete(ctx context.Context, store ports.Idempotency, resp Response) error {
	st, ok := ctx.Value(stateKey{}).(*state)
	if !ok {
		return nil
	}
	if store == nil {
		return check.Invalidf("httpidempotency: Complete: nil store; pass the idempotency store bound to the transaction")
	}
	if s := resp.status(); s < 200 || s > 499 {
		return check.Invalidf("httpidempotency: Complete: status %d is not stored; only 2xx-4xx responses are (a 5xx releases the key for a retry)", s)
	}
	raw, err := encode(resp, st.allow)
	if err != nil {
		return err
	}
	if err := store.Complete(ctx, st.res, raw); err != nil {
		return fmt.Errorf("httpidempotency: complete key %q: %w", st.res.Key, err)
	}
	st.markCompleted(resp.status())
	return nil
}

// KeyFromContext returns the idempotency key reserved for the request whose
// context (or a context derived from it) is ctx, and whether there is one.
func KeyFromContext(ctx context.Context) (string, bool) {
	st, ok := ctx.Value(stateKey{}).(*state)
	if !ok {
		return "", false
	}
	return st.res.Key, true
}
