package httpidempotency_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/httpidempotency"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// clock is a manually advanced clock for the store's leases.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// txPorts are the transaction-scoped ports of the test handler.
type txPorts struct {
	DB          bun.IDB
	Idempotency ports.Idempotency
}

// fixture is a real SQLite database (temp file) with the idempotency table,
// an items table written by the test handler, a store on the root database
// and a unit of work whose transactions carry a store bound to them.
type fixture struct {
	t     *testing.T
	db    *bun.DB
	store wharf.Idempotency
	clock *clock
	uow   *wharf.UnitOfWork[txPorts]
	calls atomic.Int64

	// entered and proceed, when set, make requests with "X-Block: 1" signal
	// entered and wait for proceed before they write anything.
	entered chan struct{}
	proceed chan struct{}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{t: t, clock: &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}}
	drv, err := sqlite.Open(ctx, "file:"+filepath.Join(t.TempDir(), "idem.db"), wharf.Options{
		Now:         f.clock.Now,
		Idempotency: wharf.IdempotencyOptions{Lease: time.Minute, TTL: time.Hour},
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, drv.Close()) })
	require.NoError(t, drv.Migrate(ctx))
	f.db, f.store = drv.DB(), drv.Idempotency()
	_, err = f.db.ExecContext(ctx, "CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)")
	require.NoError(t, err)
	f.uow, err = wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (txPorts, error) {
		return txPorts{DB: tx.DB, Idempotency: tx.Idempotency}, nil
	}, wharf.UnitOfWorkOptions{})
	require.NoError(t, err)
	return f
}

// handler is the wrapped application handler. Request headers steer it:
//
//	X-Status: the status to answer (default 201)
//	X-Mode:   "plain" (default: the middleware stores the response),
//	          "tx" (insert an item and Complete inside one transaction),
//	          "tx-rollback" (Complete, then fail the transaction: 500),
//	          "tx-rollback-answer" (the same, then answer X-Rollback-Status),
//	          "panic", "silent" (write nothing)
//	X-Block:  "1" waits for f.proceed after signalling f.entered
//
// Every answer's body is {"call":N,"body":"<request body>"}.
func (f *fixture) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := f.calls.Add(1)
		if r.Header.Get("X-Block") == "1" {
			f.entered <- struct{}{}
			<-f.proceed
		}
		status := http.StatusCreated
		if s := r.Header.Get("X-Status"); s != "" {
			status, _ = strconv.Atoi(s)
		}
		body := readAll(r)
		resp, err := httpidempotency.JSON(status, map[string]any{"call": call, "body": body})
		if err != nil {
			panic(err)
		}
		resp.Header.Set("Location", fmt.Sprintf("/items/%d", call))
		resp.Header.Set("X-Custom", "not replayed")
		resp.Header.Set("Set-Cookie", "session=secret")

		switch r.Header.Get("X-Mode") {
		case "panic":
			panic("handler exploded")
		case "silent":
			return
		case "tx", "tx-rollback", "tx-rollback-answer":
			err := f.uow.Transaction(r.Context(), func(ctx context.Context, tx txPorts) error {
				if _, err := tx.DB.ExecContext(ctx, "INSERT INTO items (body) VALUES (?)", body); err != nil {
					return err
				}
				if err := httpidempotency.Complete(ctx, tx.Idempotency, resp); err != nil {
					return err
				}
				if strings.HasPrefix(r.Header.Get("X-Mode"), "tx-rollback") {
					return errors.New("commit refused by the test")
				}
				return nil
			})
			if err != nil && r.Header.Get("X-Mode") == "tx-rollback-answer" {
				status, _ := strconv.Atoi(r.Header.Get("X-Rollback-Status"))
				resp, _ = httpidempotency.JSON(status, map[string]any{"call": call, "body": body})
				resp.Header.Set("Location", fmt.Sprintf("/items/%d", call))
			} else if err != nil {
				httpidempotency.WriteJSONError(w, r, &httpidempotency.Error{Status: http.StatusInternalServerError, Code: "internal_error", Message: err.Error()})
				return
			}
		}
		_ = resp.Write(w)
	})
}

func readAll(r *http.Request) string {
	var b strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := r.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func (f *fixture) serve(opts httpidempotency.Options) http.Handler {
	f.t.Helper()
	if opts.Store == nil {
		opts.Store = f.store
	}
	m, err := httpidempotency.New(opts)
	require.NoError(f.t, err)
	return m.Wrap(f.handler())
}

func (f *fixture) countItems() int {
	f.t.Helper()
	var n int
	require.NoError(f.t, f.db.NewRaw("SELECT COUNT(*) FROM items").Scan(f.t.Context(), &n))
	return n
}

// countRecords counts the idempotency records (reserved or completed).
func (f *fixture) countRecords() int {
	f.t.Helper()
	var n int
	require.NoError(f.t, f.db.NewRaw("SELECT COUNT(*) FROM idempotency_records").Scan(f.t.Context(), &n))
	return n
}

// request is one call of a scenario and what it must answer.
type request struct {
	method string // default POST
	path   string // default /items
	keys   []string
	body   string
	header map[string]string

	wantStatus   int
	wantReplayed bool
	wantCode     string // error code of a middleware answer
	wantCall     int64  // handler call whose response this is (0: not checked)
	// wantEcho is the request body the answering call read, when it is not
	// body (a replay of an equivalent JSON body).
	wantEcho string
}

func (rq request) do(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
	t.Helper()
	method, path := rq.method, rq.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/items"
	}
	req := httptest.NewRequest(method, path, strings.NewReader(rq.body))
	for _, k := range rq.keys {
		req.Header.Add(httpidempotency.HeaderKey, k)
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func (rq request) check(t *testing.T, i int, w *httptest.ResponseRecorder) {
	t.Helper()
	msg := fmt.Sprintf("request %d: %s", i, w.Body.String())
	require.Equal(t, rq.wantStatus, w.Code, msg)
	if rq.wantReplayed {
		require.Equal(t, "true", w.Header().Get(httpidempotency.HeaderReplayed), msg)
		require.Empty(t, w.Header().Get("X-Custom"), "a header outside the allow-list is not replayed")
		require.Empty(t, w.Header().Get("Set-Cookie"), "Set-Cookie is never replayed")
	} else {
		require.Empty(t, w.Header().Get(httpidempotency.HeaderReplayed), msg)
	}
	if rq.wantCode != "" || rq.wantCall != 0 {
		require.Equal(t, "application/json", w.Header().Get("Content-Type"), msg)
	}
	if rq.wantCode != "" {
		var body struct {
			Error struct{ Code, Message string }
		}
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body), msg)
		require.Equal(t, rq.wantCode, body.Error.Code, msg)
		require.NotEmpty(t, body.Error.Message, msg)
		return
	}
	if rq.wantCall != 0 {
		var body struct {
			Call int64
			Body string
		}
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body), msg)
		require.Equal(t, rq.wantCall, body.Call, msg)
		echo := rq.body
		if rq.wantEcho != "" {
			echo = rq.wantEcho
		}
		require.Equal(t, echo, body.Body, "the handler reads the body the middleware fingerprinted")
		require.Equal(t, fmt.Sprintf("/items/%d", rq.wantCall), w.Header().Get("Location"), "Location is replayed")
	}
}

func TestMiddleware(t *testing.T) {
	t.Parallel()
	key := []string{"key-1"}
	long := strings.Repeat("x", 2048)
	jsonType := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name      string
		opts      httpidempotency.Options
		requests  []request
		wantCalls int64
		wantItems int
		// wantRecords counts the idempotency records left: only stored
		// answers leave one.
		wantRecords int
	}{
		{
			name: "FirstRequestRunsAndRetriesReplay",
			requests: []request{
				{keys: key, body: `{"a":1}`, wantStatus: 201, wantCall: 1},
				{keys: key, body: `{"a":1}`, wantStatus: 201, wantCall: 1, wantReplayed: true},
				{keys: []string{`"key-1"`}, body: `{"a":1}`, wantStatus: 201, wantCall: 1, wantReplayed: true},
			},
			wantCalls:   1,
			wantRecords: 1,
		},
		{
			name: "DifferentBodyIsUnprocessable",
			requests: []request{
				{keys: key, body: `{"a":1}`, wantStatus: 201, wantCall: 1},
				{keys: key, body: `{"a":2}`, wantStatus: 422, wantCode: httpidempotency.CodeKeyReused},
				{keys: key, body: `{"a": 1}`, wantStatus: 422, wantCode: httpidempotency.CodeKeyReused},
			},
			wantCalls:   1,
			wantRecords: 1,
		},
		{
			name: "DifferentPathOrQueryIsUnprocessable",
			requests: []request{
				{keys: key, body: `{}`, wantStatus: 201, wantCall: 1},
				{keys: key, path: "/other", body: `{}`, wantStatus: 422, wantCode: httpidempotency.CodeKeyReused},
				{keys: key, path: "/items?x=1", body: `{}`, wantStatus: 422, wantCode: httpidempotency.CodeKeyReused},
				{keys: key, method: http.MethodPatch, body: `{}`, wantStatus: 422, wantCode: httpidempotency.CodeKeyReused},
			},
			wantCalls:   1,
			wantRecords: 1,
		},
		{
			name: "MalformedKeysAreBadRequests",
			requests: []request{
				{keys: []string{""}, wantStatus: 400, wantCode: httpidempotency.CodeKeyInvalid},
				{keys: []string{strings.Repeat("k", 256)}, wantStatus: 400, wantCode: httpidempotency.CodeKeyInvalid},
				{keys: []string{"bad\x7fkey"}, wantStatus: 400, wantCode: httpidempotency.CodeKeyInvalid},
				{keys: []string{"a", "b"}, wantStatus: 400, wantCode: httpidempotency.CodeKeyInvalid},
			},
			wantCalls:   0,
			wantRecords: 0,
		},
		{
			name: "MissingKeyPassesThroughByDefault",
			requests: []request{
				{body: "x", wantStatus: 201, wantCall: 1},
				{body: "x", wantStatus: 201, wantCall: 2},
			},
			wantCalls:   2,
			wantRecords: 0,
		},
		{
			name: "MissingKeyIsBadRequestWhenRequired",
			opts: httpidempotency.Options{Required: true},
			requests: []request{
				{body: "x", wantStatus: 400, wantCode: httpidempotency.CodeKeyMissing},
				{method: http.MethodGet, wantStatus: 201, wantCall: 1},
			},
			wantCalls:   1,
			wantRecords: 0,
		},
		{
			name: "OtherMethodsIgnoreTheKey",
			requests: []request{
				{method: http.MethodPut, keys: key, body: "x", wantStatus: 201, wantCall: 1},
				{method: http.MethodPut, keys: key, body: "x", wantStatus: 201, wantCall: 2},
				{method: http.MethodGet, keys: []string{""}, wantStatus: 201, wantCall: 3},
			},
			wantCalls:   3,
			wantRecords: 0,
		},
		{
			name: "ConfiguredMethods",
			opts: httpidempotency.Options{Methods: []string{"put"}},
			requests: []request{
				{method: http.MethodPut, keys: key, body: "x", wantStatus: 201, wantCall: 1},
				{method: http.MethodPut, keys: key, body: "x", wantStatus: 201, wantCall: 1, wantReplayed: true},
				{method: http.MethodPost, keys: key, body: "x", wantStatus: 201, wantCall: 2},
			},
			wantCalls:   2,
			wantRecords: 1,
		},
		{
			name: "ServerErrorsAreNotStored",
			requests: []request{
				{keys: key, body: "x", header: map[string]string{"X-Status": "503"}, wantStatus: 503, wantCall: 1},
				{keys: key, body: "x", wantStatus: 201, wantCall: 2},
				{keys: key, body: "x", header: map[string]string{"X-Status": "500"}, wantStatus: 201, wantCall: 2, wantReplayed: true},
			},
			wantCalls:   2,
			wantRecords: 1,
		},
		{
			name: "ClientErrorsAreStoredWhenAsked",
			opts: httpidempotency.Options{StoreClientErrors: true},
			requests: []request{
				{keys: key, body: "x", header: map[string]string{"X-Status": "404"}, wantStatus: 404, wantCall: 1},
				{keys: key, body: "x", wantStatus: 404, wantCall: 1, wantReplayed: true},
			},
			wantCalls:   1,
			wantRecords: 1,
		},
		{
			name: "ClientErrorsReleaseTheKey",
			requests: []request{
				{keys: key, body: "x", header: map[string]string{"X-Status": "400"}, wantStatus: 400, wantCall: 1},
				{keys: key, body: "x", header: map[string]string{"X-Status": "404"}, wantStatus: 404, wantCall: 2},
			},
			wantCalls:   2,
			wantRecords: 0, // a rejected request leaves nothing behind
		},
		{
			name: "CorrectedRetryAfterAClientErrorRuns",
			requests: []request{
				{keys: key, body: "x", header: map[string]string{"X-Status": "409"}, wantStatus: 409, wantCall: 1},
				{keys: key, body: "x", wantStatus: 201, wantCall: 2},
				{keys: key, body: "x", header: map[string]string{"X-Status": "409"}, wantStatus: 201, wantCall: 2, wantReplayed: true},
			},
			wantCalls:   2,
			wantRecords: 1,
		},
		{
			name: "ClientErrorCompletedInTransactionIsKept",
			requests: []request{
				{keys: key, body: "x", header: map[string]string{"X-Mode": "tx", "X-Status": "402"}, wantStatus: 402, wantCall: 1},
				{keys: key, body: "x", header: map[string]string{"X-Mode": "tx"}, wantStatus: 402, wantCall: 1, wantReplayed: true},
			},
			wantCalls:   1,
			wantItems:   1,
			wantRecords: 1,
		},
		{
			// The handler completed in a transaction that rolled back, then
			// answered something else: the completion is gone, so the key
			// must not stay reserved until its lease expires.
			name: "ClientErrorAfterARolledBackCompletionReleasesTheKey",
			requests: []request{
				{keys: key, body: "x", header: map[string]string{"X-Mode": "tx-rollback-answer", "X-Rollback-Status": "409"}, wantStatus: 409, wantCall: 1},
				{keys: key, body: "x", wantStatus: 201, wantCall: 2},
				{keys: key, body: "x", wantStatus: 201, wantCall: 2, wantReplayed: true},
			},
			wantCalls:   2,
			wantRecords: 1,
		},
		{
			name: "SuccessAfterARolledBackCompletionIsStored",
			requests: []request{
				{keys: key, body: "x", header: map[string]string{"X-Mode": "tx-rollback-answer", "X-Rollback-Status": "200"}, wantStatus: 200, wantCall: 1},
				{keys: key, body: "x", wantStatus: 200, wantCall: 1, wantReplayed: true},
			},
			wantCalls:   1,
			wantRecords: 1,
		},
		{
			name: "JSONBodiesCompareAsCanonicalJSON",
			requests: []request{
				{keys: key, body: `{"title":"a","tags":["x",1.5e3,true,null,{}]}`, header: jsonType, wantStatus: 201, wantCall: 1},
				{keys: key, body: "{ \"tags\" : [ \"x\" , 1.5e3, true, null, { } ],\n  \"title\": \"\\u0061\" }", header: jsonType,
					wantStatus: 201, wantCall: 1, wantReplayed: true, wantEcho: `{"title":"a","tags":["x",1.5e3,true,null,{}]}`},
				{keys: key, body: `{"tags":["x",1.5e3,true,null,{}],"title":"a"}`, header: map[string]string{"Content-Type": "application/merge-patch+json; charset=utf-8"},
					wantStatus: 201, wantCall: 1, wantReplayed: true, wantEcho: `{"title":"a","tags":["x",1.5e3,true,null,{}]}`},
				{keys: key, body: `{"title":"a","tags":["x",1500,true,null,{}]}`, header: jsonType, wantStatus: 422, wantCode: httpidempotency.CodeKeyReused},
				{keys: key, body: `{"title":"a","tags":[1.5e3,"x",true,null,{}]}`, header: jsonType, wantStatus: 422, wantCode: httpidempotency.CodeKeyReused},
				{keys: key, body: `{"title":"a","tags":["x",1.5e3,true,null,{}]}`, header: map[string]string{"Content-Type": "text/plain"}, wantStatus: 422, wantCode: httpidempotency.CodeKeyReused},
				{keys: key, body: `{"title":"a","title":"a","tags":["x",1.5e3,true,null,{}]}`, header: jsonType, wantStatus: 422, wantCode: httpidempotency.CodeKeyReused},
			},
			wantCalls:   1,
			wantRecords: 1,
		},
		{
			name: "LoneSurrogateIsNotReplacementCharacter",
			requests: []request{
				{keys: key, body: `{"t":"\ud800"}`, header: jsonType, wantStatus: 201, wantCall: 1},
				{keys: key, body: `{"t":"\ufffd"}`, header: jsonType, wantStatus: 422, wantCode: httpidempotency.CodeKeyReused},
				{keys: key, body: `{"t":"\ud800"}`, header: jsonType, wantStatus: 201, wantCall: 1, wantReplayed: true},
			},
			wantCalls:   1,
			wantRecords: 1,
		},
		{
			name: "InvalidJSONComparesByteForByte",
			requests: []request{
				{keys: key, body: `{"a":`, header: jsonType, wantStatus: 201, wantCall: 1},
				{keys: key, body: `{"a": `, header: jsonType, wantStatus: 422, wantCode: httpidempotency.CodeKeyReused},
				{keys: key, body: `{"a":`, header: jsonType, wantStatus: 201, wantCall: 1, wantReplayed: true},
			},
			wantCalls:   1,
			wantRecords: 1,
		},
		{
			name: "ExactFingerprintComparesJSONByteForByte",
			opts: httpidempotency.Options{Fingerprint: httpidempotency.ExactFingerprint},
			requests: []request{
				{keys: key, body: `{"a":1}`, header: jsonType, wantStatus: 201, wantCall: 1},
				{keys: key, body: `{"a": 1}`, header: jsonType, wantStatus: 422, wantCode: httpidempotency.CodeKeyReused},
			},
			wantCalls:   1,
			wantRecords: 1,
		},
		{
			name: "SilentHandlerStoresAnEmptyOK",
			requests: []request{
				{keys: key, body: "x", header: map[string]string{"X-Mode": "silent"}, wantStatus: 200},
			},
			wantCalls:   1,
			wantRecords: 1,
		},
		{
			name: "ScopeSeparatesCallers",
			opts: httpidempotency.Options{Scope: func(r *http.Request) map[string]string {
				return map[string]string{"user": r.Header.Get("X-User")}
			}},
			requests: []request{
				{keys: key, body: "x", header: map[string]string{"X-User": "ann"}, wantStatus: 201, wantCall: 1},
				{keys: key, body: "x", header: map[string]string{"X-User": "bob"}, wantStatus: 201, wantCall: 2},
				{keys: key, body: "x", header: map[string]string{"X-User": "ann"}, wantStatus: 201, wantCall: 1, wantReplayed: true},
				{keys: key, body: "x", header: map[string]string{"X-User": "bob"}, wantStatus: 201, wantCall: 2, wantReplayed: true},
			},
			wantCalls:   2,
			wantRecords: 2,
		},
		{
			name: "NamespacesSeparateAPIs",
			opts: httpidempotency.Options{Namespace: "api.v2"},
			requests: []request{
				{keys: key, body: "x", wantStatus: 201, wantCall: 1},
				{keys: key, body: "x", wantStatus: 201, wantCall: 1, wantReplayed: true},
			},
			wantCalls:   1,
			wantRecords: 1,
		},
		{
			name: "OversizedBodyIsTooLarge",
			opts: httpidempotency.Options{MaxBodyBytes: 1024},
			requests: []request{
				{keys: key, body: long, wantStatus: 413, wantCode: httpidempotency.CodeBodyTooLarge},
				{body: long, wantStatus: 201, wantCall: 1}, // no key: not read by the middleware
			},
			wantCalls:   1,
			wantRecords: 0,
		},
		{
			name: "CompletedInTransactionCommitsWithTheWrite",
			requests: []request{
				{keys: key, body: "x", header: map[string]string{"X-Mode": "tx"}, wantStatus: 201, wantCall: 1},
				{keys: key, body: "x", header: map[string]string{"X-Mode": "tx"}, wantStatus: 201, wantCall: 1, wantReplayed: true},
				{keys: []string{"key-2"}, body: "y", header: map[string]string{"X-Mode": "tx"}, wantStatus: 201, wantCall: 2},
				{body: "z", header: map[string]string{"X-Mode": "tx"}, wantStatus: 201, wantCall: 3}, // Complete without a key does nothing
			},
			wantCalls:   3,
			wantItems:   3,
			wantRecords: 2,
		},
		{
			name: "RolledBackCompletionReleasesTheKey",
			requests: []request{
				{keys: key, body: "x", header: map[string]string{"X-Mode": "tx-rollback"}, wantStatus: 500, wantCode: "internal_error"},
				{keys: key, body: "x", header: map[string]string{"X-Mode": "tx"}, wantStatus: 201, wantCall: 2},
				{keys: key, body: "x", header: map[string]string{"X-Mode": "tx"}, wantStatus: 201, wantCall: 2, wantReplayed: true},
			},
			wantCalls:   2,
			wantItems:   1,
			wantRecords: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			h := f.serve(tt.opts)
			for i, rq := range tt.requests {
				rq.check(t, i, rq.do(t, h))
			}
			require.Equal(t, tt.wantCalls, f.calls.Load(), "handler runs")
			require.Equal(t, tt.wantItems, f.countItems(), "rows written")
			require.Equal(t, tt.wantRecords, f.countRecords(), "idempotency records left")
		})
	}
}

func TestMiddlewarePanicReleasesTheKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	h := f.serve(httpidempotency.Options{})
	first := request{keys: []string{"k"}, body: "x", header: map[string]string{"X-Mode": "panic"}}
	require.PanicsWithValue(t, "handler exploded", func() { first.do(t, h) })
	retry := request{keys: []string{"k"}, body: "x", wantStatus: 201, wantCall: 2}
	retry.check(t, 1, retry.do(t, h))
}

func TestMiddlewareInFlightIsConflict(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.entered, f.proceed = make(chan struct{}), make(chan struct{})
	h := f.serve(httpidempotency.Options{})
	first := request{keys: []string{"k"}, body: "x", header: map[string]string{"X-Block": "1", "X-Mode": "tx"}, wantStatus: 201, wantCall: 1}
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- first.do(t, h) }()
	<-f.entered

	conflict := request{keys: []string{"k"}, body: "x", wantStatus: 409, wantCode: httpidempotency.CodeKeyInUse}
	w := conflict.do(t, h)
	conflict.check(t, 1, w)
	require.Equal(t, "1", w.Header().Get("Retry-After"))
	mismatch := request{keys: []string{"k"}, body: "other", wantStatus: 422, wantCode: httpidempotency.CodeKeyReused}
	mismatch.check(t, 2, mismatch.do(t, h))

	close(f.proceed)
	first.check(t, 0, <-done)
	replay := request{keys: []string{"k"}, body: "x", wantStatus: 201, wantCall: 1, wantReplayed: true}
	replay.check(t, 3, replay.do(t, h))
	require.Equal(t, int64(1), f.calls.Load())
	require.Equal(t, 1, f.countItems())
}

// TestMiddlewareTakenOverReservationCannotCommit shows why completing in the
// handler's transaction is safe: a request whose lease expired and whose key
// a retry took over fails to complete, so its write rolls back instead of
// being committed twice.
func TestMiddlewareTakenOverReservationCannotCommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.entered, f.proceed = make(chan struct{}), make(chan struct{})
	h := f.serve(httpidempotency.Options{})
	slow := request{keys: []string{"k"}, body: "x", header: map[string]string{"X-Block": "1", "X-Mode": "tx"}, wantStatus: 500, wantCode: "internal_error"}
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- slow.do(t, h) }()
	<-f.entered

	f.clock.Advance(2 * time.Minute) // the slow request's one-minute lease expires
	retry := request{keys: []string{"k"}, body: "x", header: map[string]string{"X-Mode": "tx"}, wantStatus: 201, wantCall: 2}
	retry.check(t, 1, retry.do(t, h))

	close(f.proceed)
	slow.check(t, 0, <-done)
	require.Equal(t, 1, f.countItems(), "the taken-over request rolled back")
	replay := request{keys: []string{"k"}, body: "x", wantStatus: 201, wantCall: 2, wantReplayed: true}
	replay.check(t, 2, replay.do(t, h))
}

func TestMiddlewareConcurrentRequestsRunOnce(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"plain", "tx"} {
		t.Run(map[string]string{"plain": "CompletedByMiddleware", "tx": "CompletedInTransaction"}[mode], func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			srv := httptest.NewServer(f.serve(httpidempotency.Options{}))
			t.Cleanup(srv.Close)
			const n = 16
			start := make(chan struct{})
			type result struct {
				status   int
				replayed bool
			}
			results := make(chan result, n)
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					req, err := http.NewRequest(http.MethodPost, srv.URL+"/items", strings.NewReader("same"))
					if err != nil {
						results <- result{status: -1}
						return
					}
					req.Header.Set(httpidempotency.HeaderKey, "race")
					req.Header.Set("X-Mode", mode)
					resp, err := srv.Client().Do(req)
					if err != nil {
						results <- result{status: -1}
						return
					}
					_ = resp.Body.Close()
					results <- result{status: resp.StatusCode, replayed: resp.Header.Get(httpidempotency.HeaderReplayed) == "true"}
				}()
			}
			close(start)
			wg.Wait()
			close(results)
			first := 0
			for r := range results {
				switch {
				case r.status == 201 && !r.replayed:
					first++
				case r.status == 201 && r.replayed, r.status == 409:
				default:
					t.Errorf("unexpected answer %+v", r)
				}
			}
			require.Equal(t, 1, first, "exactly one request ran")
			require.Equal(t, int64(1), f.calls.Load())
			if mode == "tx" {
				require.Equal(t, 1, f.countItems())
			}
		})
	}
}

func TestCompleteRejectsUnstorableResponses(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var got []error
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got,
			httpidempotency.Complete(r.Context(), f.store, httpidempotency.Response{Status: 500}),
			httpidempotency.Complete(r.Context(), f.store, httpidempotency.Response{Status: 102}),
			httpidempotency.Complete(r.Context(), nil, httpidempotency.Response{Status: 200}),
		)
		key, ok := httpidempotency.KeyFromContext(r.Context())
		require.True(t, ok)
		require.Equal(t, "k", key)
		w.WriteHeader(http.StatusNoContent)
	})
	m, err := httpidempotency.New(httpidempotency.Options{Store: f.store})
	require.NoError(t, err)
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Header.Set(httpidempotency.HeaderKey, "k")
	w := httptest.NewRecorder()
	m.Wrap(inner).ServeHTTP(w, req)
	require.Equal(t, http.StatusNoContent, w.Code)
	require.Len(t, got, 3)
	for _, err := range got {
		require.ErrorIs(t, err, ports.ErrInvalidArgument)
	}
	_, ok := httpidempotency.KeyFromContext(context.Background())
	require.False(t, ok)
	require.NoError(t, httpidempotency.Complete(context.Background(), f.store, httpidempotency.Response{}), "no reservation: nothing to do")
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name    string
		opts    httpidempotency.Options
		wantErr string
	}{
		{name: "NilStore", opts: httpidempotency.Options{}, wantErr: "Options.Store is nil"},
		{name: "NegativeBodyLimit", opts: httpidempotency.Options{Store: f.store, MaxBodyBytes: -1}, wantErr: "must not be negative"},
		{name: "NegativeLease", opts: httpidempotency.Options{Store: f.store, Lease: -time.Second}, wantErr: "must not be negative"},
		{name: "LongNamespace", opts: httpidempotency.Options{Store: f.store, Namespace: strings.Repeat("n", 256)}, wantErr: "the limit is 255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := httpidempotency.New(tt.opts)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
