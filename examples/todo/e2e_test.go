package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/httpidempotency"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/providers/mysql"
	"github.com/wharf-go/wharf/providers/postgres"
)

// awaitTimeout bounds every wait for the relay.
const awaitTimeout = 15 * time.Second

// dialectCase gives a test a fresh, empty database of one dialect.
type dialectCase struct {
	name string
	// dialect is the wharf dialect the URL's scheme must pick.
	dialect string
	// database returns the URL of a fresh database (a temp file, a new
	// PostgreSQL schema, a new MySQL database), dropped when the test ends.
	database func(t *testing.T) string
}

func dialects() []dialectCase {
	return []dialectCase{
		{name: "SQLite", dialect: "sqlite", database: func(t *testing.T) string {
			return "file:" + filepath.Join(t.TempDir(), "todo.db")
		}},
		{name: "PostgreSQL", dialect: "postgres", database: func(t *testing.T) string {
			base := testdb.URL(t, testdb.PostgresEnv)
			schema := randomName("todo_t_")
			admin, err := postgres.Open(t.Context(), base, wharf.Options{})
			require.NoError(t, err)
			_, err = admin.DB().ExecContext(t.Context(), "CREATE SCHEMA "+schema)
			require.NoError(t, err)
			t.Cleanup(func() {
				defer func() { _ = admin.Close() }()
				_, err := admin.DB().ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
				require.NoError(t, err, "drop schema %s", schema)
			})
			u, err := url.Parse(base)
			require.NoError(t, err)
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}},
		{name: "MariaDB", dialect: "mysql", database: func(t *testing.T) string {
			base := testdb.URL(t, testdb.MySQLEnv)
			name := randomName("todo_t_")
			admin, err := mysql.Open(t.Context(), base, wharf.Options{})
			require.NoError(t, err)
			_, err = admin.DB().ExecContext(t.Context(), "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4")
			require.NoError(t, err)
			t.Cleanup(func() {
				defer func() { _ = admin.Close() }()
				_, err := admin.DB().ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`")
				require.NoError(t, err, "drop database %s", name)
			})
			u, err := url.Parse(base)
			require.NoError(t, err)
			u.Path = "/" + name
			return u.String()
		}},
	}
}

func randomName(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// testApp is the real app wiring (newServer) behind an httptest.Server.
type testApp struct {
	t   *testing.T
	srv *server
	url string
	c   *http.Client
}

// startApp boots the app on a fresh database of d and serves it over HTTP
// until the test ends.
func startApp(t *testing.T, d dialectCase) *testApp {
	t.Helper()
	return startAppOn(t, d, d.database(t), testLogger(t))
}

// startAppOn is startApp on the database at url, logging to logger.
func startAppOn(t *testing.T, d dialectCase, url string, logger *slog.Logger) *testApp {
	t.Helper()
	cfg := config{
		Database: d.dialect, URL: url, URLSource: "test",
		Logger:               logger,
		RelayPollInterval:    10 * time.Millisecond,
		RelayMaxPollInterval: 50 * time.Millisecond,
	}
	srv, err := newServer(t.Context(), cfg)
	require.NoError(t, err)
	require.Equal(t, d.dialect, srv.drv.Dialect(), "the URL's scheme picks the dialect")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, srv.Close(ctx))
	})
	hs := httptest.NewServer(srv.handler)
	t.Cleanup(hs.Close) // runs first: in-flight requests finish before Close
	return &testApp{t: t, srv: srv, url: hs.URL, c: hs.Client()}
}

// testLogger sends warnings and errors to the test log, and drops what is
// logged after the test ended.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}

// response is one HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	require.NoError(t, json.Unmarshal(r.body, v), "body: %s", r.body)
}

// errorCode returns the code of an error body.
func (r response) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	r.decode(t, &e)
	require.NotEmpty(t, e.Error.Message, "an error body has a message: %s", r.body)
	return e.Error.Code
}

func (r response) replayed() bool { return r.header.Get(httpidempotency.HeaderReplayed) == "true" }

// do sends a request; header holds extra headers ("Idempotency-Key"). A
// request with a body is sent as application/json unless header sets
// Content-Type; an empty value removes a header.
func (a *testApp) do(method, path, body string, header map[string]string) (response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func (a *testApp) mustDo(method, path, body string, header map[string]string) response {
	a.t.Helper()
	r, err := a.do(method, path, body, header)
	require.NoError(a.t, err)
	return r
}

func key(k string) map[string]string { return map[string]string{httpidempotency.HeaderKey: k} }

type todoJSON struct {
	ID          string  `json:"id"`
	Title       string  `json:"title"`
	Completed   bool    `json:"completed"`
	CompletedAt *string `json:"completed_at"`
	CreatedAt   string  `json:"created_at"`
	UpdatedAt   string  `json:"updated_at"`
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

func (a *testApp) create(title string, header map[string]string) todoJSON {
	a.t.Helper()
	body, err := json.Marshal(map[string]string{"title": title})
	require.NoError(a.t, err)
	r := a.mustDo(http.MethodPost, "/todos", string(body), header)
	require.Equal(a.t, http.StatusCreated, r.status, "create: %s", r.body)
	var td todoJSON
	r.decode(a.t, &td)
	return td
}

// count counts the rows of a table.
func (a *testApp) count(table string) int {
	a.t.Helper()
	n, err := a.srv.drv.DB().NewSelect().Table(table).Count(a.t.Context())
	require.NoError(a.t, err)
	return int(n)
}

// activity reads the whole feed over HTTP, newest first.
func (a *testApp) activity() []activityJSON {
	a.t.Helper()
	var all []activityJSON
	path := "/activity?limit=100"
	for {
		r := a.mustDo(http.MethodGet, path, "", nil)
		require.Equal(a.t, http.StatusOK, r.status, "activity: %s", r.body)
		var p pageJSON[activityJSON]
		r.decode(a.t, &p)
		all = append(all, p.Items...)
		if p.NextCursor == nil {
			return all
		}
		path = "/activity?limit=100&cursor=" + url.QueryEscape(*p.NextCursor)
	}
}

// await polls cond until it holds or awaitTimeout passes.
func (a *testApp) await(what string, cond func() bool) {
	a.t.Helper()
	deadline := time.Now().Add(awaitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			a.t.Fatalf("gave up after %v waiting for %s", awaitTimeout, what)
		}
		<-tick.C
	}
}

// awaitDelivered waits until the relay delivered every outbox message, and
// checks that none was dead-lettered.
func (a *testApp) awaitDelivered() {
	a.t.Helper()
	a.await("the outbox to drain", func() bool {
		st, err := a.srv.drv.Outbox().Stats(a.t.Context())
		require.NoError(a.t, err)
		return st.Total() == 0 // nothing pending, no dead letter
	})
}

// activityCounts awaits the relay and returns how many feed entries each
// (todo, event type) has.
func (a *testApp) activityCounts() map[string]int {
	a.t.Helper()
	a.awaitDelivered()
	counts := map[string]int{}
	for _, e := range a.activity() {
		counts[e.TodoID+" "+e.Type]++
	}
	return counts
}

type scenario struct {
	name string
	run  func(t *testing.T, a *testApp)
}

func TestTodoApp(t *testing.T) {
	t.Parallel()
	scenarios := []scenario{
		{"CreateListGetCompleteDelete", testCRUD},
		{"IdempotencyKeyReplaysWithoutSecondRowOrEvent", testReplay},
		{"ConcurrentRequestsWithOneKeyCreateOneRow", testConcurrentKey},
		{"KeyReusedWithDifferentBodyIsUnprocessable", testKeyMismatch},
		{"PaginationWalksEveryRowOnceDuringInserts", testPagination},
		{"BadInputIsRejectedAndWritesNothing", testBadInput},
		{"WrongMethodsAreNotAllowedWithAllow", testWrongMethods},
		{"TitlesArriveAsSent", testTitlesArriveAsSent},
		{"JSONInUTF8IsAccepted", testJSONContentTypes},
	}
	for _, d := range dialects() {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					t.Parallel()
					sc.run(t, startApp(t, d))
				})
			}
		})
	}
}

func testCRUD(t *testing.T, a *testApp) {
	created := a.create("buy milk", nil)
	require.Equal(t, "buy milk", created.Title)
	require.False(t, created.Completed)
	require.Nil(t, created.CompletedAt)

	r := a.mustDo(http.MethodGet, "/todos/"+created.ID, "", nil)
	require.Equal(t, http.StatusOK, r.status)
	var got todoJSON
	r.decode(t, &got)
	require.Equal(t, created, got)

	other := a.create("  walk the dog  ", nil)
	require.Equal(t, "walk the dog", other.Title, "titles are trimmed")
	r = a.mustDo(http.MethodGet, "/todos", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	var list pageJSON[todoJSON]
	r.decode(t, &list)
	require.Equal(t, []todoJSON{other, created}, list.Items, "newest first")
	require.Nil(t, list.NextCursor)

	r = a.mustDo(http.MethodPost, "/todos/"+created.ID+"/complete", "", nil)
	require.Equal(t, http.StatusOK, r.status, "complete: %s", r.body)
	var done todoJSON
	r.decode(t, &done)
	require.True(t, done.Completed)
	require.NotNil(t, done.CompletedAt)
	require.Equal(t, *done.CompletedAt, done.UpdatedAt)

	r = a.mustDo(http.MethodPost, "/todos/"+created.ID+"/complete", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	var again todoJSON
	r.decode(t, &again)
	require.Equal(t, done, again, "completing a completed todo changes nothing")

	r = a.mustDo(http.MethodDelete, "/todos/"+created.ID, "", nil)
	require.Equal(t, http.StatusNoContent, r.status, "delete: %s", r.body)
	require.Empty(t, r.body)
	for _, req := range []struct{ method, path string }{
		{http.MethodGet, "/todos/" + created.ID},
		{http.MethodDelete, "/todos/" + created.ID},
		{http.MethodPost, "/todos/" + created.ID + "/complete"},
	} {
		r = a.mustDo(req.method, req.path, "", nil)
		require.Equal(t, http.StatusNotFound, r.status, "%s %s", req.method, req.path)
		require.Equal(t, "todo_not_found", r.errorCode(t))
	}
	require.Equal(t, 1, a.count("todos"))

	require.Equal(t, map[string]int{
		created.ID + " todo.created":   1,
		created.ID + " todo.completed": 1,
		created.ID + " todo.deleted":   1,
		other.ID + " todo.created":     1,
	}, a.activityCounts(), "every event reaches the feed exactly once")
	feed := a.activity()
	require.Equal(t, "todo.deleted", feed[0].Type, "the feed is newest first")
	require.Equal(t, "buy milk", feed[0].Title)
}

func testReplay(t *testing.T, a *testApp) {
	first := a.mustDo(http.MethodPost, "/todos", `{"title":"pay rent"}`, key("rent-1"))
	require.Equal(t, http.StatusCreated, first.status)
	require.False(t, first.replayed())
	for range 2 {
		r := a.mustDo(http.MethodPost, "/todos", `{"title":"pay rent"}`, key("rent-1"))
		require.Equal(t, http.StatusCreated, r.status)
		require.True(t, r.replayed(), "Idempotent-Replayed: true")
		require.Equal(t, first.body, r.body, "the first response, byte for byte")
		require.Equal(t, first.header.Get("Location"), r.header.Get("Location"))
		require.Equal(t, "application/json", r.header.Get("Content-Type"))
	}
	var td todoJSON
	first.decode(t, &td)
	require.Equal(t, "/todos/"+td.ID, first.header.Get("Location"))

	path := "/todos/" + td.ID + "/complete"
	c1 := a.mustDo(http.MethodPost, path, "", key("rent-done"))
	require.Equal(t, http.StatusOK, c1.status)
	c2 := a.mustDo(http.MethodPost, path, "", key("rent-done"))
	require.Equal(t, http.StatusOK, c2.status)
	require.True(t, c2.replayed())
	require.Equal(t, c1.body, c2.body)

	// A 4xx is not stored: the request is rejected, it leaves no record,
	// and a retry runs again.
	missing := "/todos/00000000-0000-7000-8000-000000000000/complete"
	n1 := a.mustDo(http.MethodPost, missing, "", key("nope"))
	require.Equal(t, http.StatusNotFound, n1.status)
	n2 := a.mustDo(http.MethodPost, missing, "", key("nope"))
	require.Equal(t, http.StatusNotFound, n2.status)
	require.False(t, n2.replayed(), "a rejected request is not replayed: it ran again")

	require.Equal(t, 1, a.count("todos"), "one row")
	require.Equal(t, 2, a.count("idempotency_records"), "rent-1 and rent-done; nothing for the rejected key")
	require.Equal(t, map[string]int{
		td.ID + " todo.created":   1,
		td.ID + " todo.completed": 1,
	}, a.activityCounts(), "one event each")
}

func testConcurrentKey(t *testing.T, a *testApp) {
	const n = 16
	start := make(chan struct{})
	results := make(chan response, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := a.do(http.MethodPost, "/todos", `{"title":"only once"}`, key("race"))
			if err != nil {
				errs <- err
				return
			}
			results <- r
		}()
	}
	close(start) // release them together
	wg.Wait()
	close(results)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var firsts, replays, conflicts int
	var body []byte
	for r := range results {
		switch {
		case r.status == http.StatusCreated && !r.replayed():
			firsts++
			body = r.body
		case r.status == http.StatusCreated:
			replays++
		case r.status == http.StatusConflict:
			require.Equal(t, httpidempotency.CodeKeyInUse, r.errorCode(t))
			conflicts++
		default:
			t.Fatalf("unexpected answer %d: %s", r.status, r.body)
		}
	}
	t.Logf("1 created, %d replays, %d conflicts", replays, conflicts)
	require.Equal(t, 1, firsts, "exactly one request ran")
	require.Equal(t, n, firsts+replays+conflicts)
	require.Equal(t, 1, a.count("todos"), "never two rows")
	var td todoJSON
	require.NoError(t, json.Unmarshal(body, &td))
	require.Equal(t, map[string]int{td.ID + " todo.created": 1}, a.activityCounts())

	r := a.mustDo(http.MethodPost, "/todos", `{"title":"only once"}`, key("race"))
	require.Equal(t, http.StatusCreated, r.status)
	require.True(t, r.replayed())
	require.Equal(t, body, r.body)
}

func testKeyMismatch(t *testing.T, a *testApp) {
	r := a.mustDo(http.MethodPost, "/todos", `{"title":"a"}`, key("k"))
	require.Equal(t, http.StatusCreated, r.status)
	for _, req := range []struct{ method, path, body string }{
		{http.MethodPost, "/todos", `{"title":"b"}`},
		{http.MethodPost, "/todos", `{"title":"a","title":"a"}`}, // a name twice: compared byte for byte
		{http.MethodPost, "/todos/00000000-0000-7000-8000-000000000000/complete", ""},
	} {
		r := a.mustDo(req.method, req.path, req.body, key("k"))
		require.Equal(t, http.StatusUnprocessableEntity, r.status, "%s %s %s", req.method, req.path, req.body)
		require.Equal(t, httpidempotency.CodeKeyReused, r.errorCode(t))
	}
	// The same JSON written differently is the same request: a replay.
	for _, body := range []string{`{"title": "a"}`, "{\n  \"title\" : \"\\u0061\"\n}\n"} {
		again := a.mustDo(http.MethodPost, "/todos", body, key("k"))
		require.Equal(t, http.StatusCreated, again.status, "body %s: %s", body, again.body)
		require.True(t, again.replayed(), "body %s", body)
		require.Equal(t, r.body, again.body)
	}
	require.Equal(t, 1, a.count("todos"))
}

func testPagination(t *testing.T, a *testApp) {
	const existing, pageSize, maxInserts = 23, 4, 40
	for i := range existing {
		a.create(fmt.Sprintf("todo %02d", i), nil)
	}
	var before pageJSON[todoJSON]
	r := a.mustDo(http.MethodGet, "/todos?limit=100", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	r.decode(t, &before)
	require.Len(t, before.Items, existing)

	// Insert while walking: rows created during the walk may or may not
	// appear, but every row that existed before must appear exactly once.
	stop := make(chan struct{})
	inserted := make(chan error, 1)
	go func() {
		for i := 0; i < maxInserts; i++ {
			select {
			case <-stop:
				inserted <- nil
				return
			default:
			}
			r, err := a.do(http.MethodPost, "/todos", fmt.Sprintf(`{"title":"concurrent %02d"}`, i), nil)
			if err == nil && r.status != http.StatusCreated {
				err = fmt.Errorf("insert: %d %s", r.status, r.body)
			}
			if err != nil {
				inserted <- err
				return
			}
		}
		inserted <- nil
	}()

	var walked []todoJSON
	path := fmt.Sprintf("/todos?limit=%d", pageSize)
	pages := 0
	for {
		r := a.mustDo(http.MethodGet, path, "", nil)
		require.Equal(t, http.StatusOK, r.status, "page %d: %s", pages, r.body)
		var p pageJSON[todoJSON]
		r.decode(t, &p)
		require.LessOrEqual(t, len(p.Items), pageSize)
		walked = append(walked, p.Items...)
		pages++
		if p.NextCursor == nil {
			break
		}
		require.NotEmpty(t, p.Items)
		path = fmt.Sprintf("/todos?limit=%d&cursor=%s", pageSize, url.QueryEscape(*p.NextCursor))
	}
	close(stop)
	require.NoError(t, <-inserted)

	seen := map[string]int{}
	for i, td := range walked {
		seen[td.ID]++
		require.Equal(t, 1, seen[td.ID], "row %s appears twice", td.ID)
		if i > 0 {
			prev := walked[i-1]
			require.True(t, prev.CreatedAt > td.CreatedAt || prev.CreatedAt == td.CreatedAt && prev.ID > td.ID,
				"newest first: %v before %v", prev, td)
		}
	}
	var walkedExisting []string
	for _, td := range walked {
		for _, b := range before.Items {
			if b.ID == td.ID {
				walkedExisting = append(walkedExisting, td.ID)
			}
		}
	}
	var want []string
	for _, b := range before.Items {
		want = append(want, b.ID)
	}
	require.Equal(t, want, walkedExisting, "every row that existed before the walk, once, in order")
	t.Logf("walked %d rows in %d pages (%d inserted during the walk)", len(walked), pages, a.count("todos")-existing)
}

func testBadInput(t *testing.T, a *testApp) {
	unknown := "00000000-0000-7000-8000-000000000000"
	longTitle := strings.Repeat("é", 201)
	huge := `{"title":"` + strings.Repeat("x", 70<<10) + `"}`
	junkCursor := "djF8bm90LWEtdGltZXxub3QtYW4taWQ" // base64url of "v1|not-a-time|not-an-id"
	jsonType := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		header     map[string]string
		wantStatus int
		wantCode   string
	}{
		{"MalformedJSON", "POST", "/todos", `{"title":`, nil, 400, "invalid_json"},
		{"SyntaxError", "POST", "/todos", `{"title" "x"}`, nil, 400, "invalid_json"},
		{"NotAnObject", "POST", "/todos", `["x"]`, nil, 400, "invalid_json"},
		{"UnknownField", "POST", "/todos", `{"title":"x","done":true}`, nil, 400, "invalid_json"},
		{"WrongType", "POST", "/todos", `{"title":5}`, nil, 400, "invalid_json"},
		{"TrailingData", "POST", "/todos", `{"title":"x"} {"title":"y"}`, nil, 400, "invalid_json"},
		{"EmptyBody", "POST", "/todos", ``, jsonType, 400, "invalid_json"},
		{"MissingTitle", "POST", "/todos", `{}`, nil, 400, "invalid_title"},
		{"EmptyTitle", "POST", "/todos", `{"title":""}`, nil, 400, "invalid_title"},
		{"BlankTitle", "POST", "/todos", `{"title":"  \t "}`, nil, 400, "invalid_title"},
		{"TitleTooLong", "POST", "/todos", `{"title":"` + longTitle + `"}`, nil, 400, "invalid_title"},
		{"ControlCharacterInTitle", "POST", "/todos", `{"title":"a\u0007b"}`, nil, 400, "invalid_title"},
		{"InvalidUTF8InTitle", "POST", "/todos", "{\"title\":\"a\xffb\"}", nil, 400, "invalid_json"},
		{"InvalidUTF8WithKey", "POST", "/todos", "{\"title\":\"a\xc3\"}", key("bad-utf8"), 400, "invalid_json"},
		{"LoneHighSurrogate", "POST", "/todos", `{"title":"a\ud800b"}`, nil, 400, "invalid_json"},
		{"LoneLowSurrogate", "POST", "/todos", `{"title":"a\uDC00b"}`, nil, 400, "invalid_json"},
		{"HighSurrogateThenNonSurrogate", "POST", "/todos", `{"title":"\ud83d\u0041"}`, nil, 400, "invalid_json"},
		{"ReversedSurrogatePair", "POST", "/todos", `{"title":"\ude00\ud83d"}`, nil, 400, "invalid_json"},
		{"SurrogateInFieldName", "POST", "/todos", `{"\ud800":"x"}`, nil, 400, "invalid_json"},
		{"RightToLeftOverrideInTitle", "POST", "/todos", `{"title":"invoice\u202egpj.exe"}`, nil, 400, "invalid_title"},
		{"IsolateInTitle", "POST", "/todos", "{\"title\":\"a\u2067b\"}", nil, 400, "invalid_title"},
		{"LineSeparatorInTitle", "POST", "/todos", `{"title":"a\u2028b"}`, nil, 400, "invalid_title"},
		{"NoContentType", "POST", "/todos", `{"title":"x"}`, map[string]string{"Content-Type": ""}, 415, "unsupported_media_type"},
		{"NoContentTypeWithKey", "POST", "/todos", `{"title":"x"}`, map[string]string{"Content-Type": "", httpidempotency.HeaderKey: "no-type"}, 415, "unsupported_media_type"},
		{"TextPlain", "POST", "/todos", `{"title":"x"}`, map[string]string{"Content-Type": "text/plain"}, 415, "unsupported_media_type"},
		{"Form", "POST", "/todos", `title=x`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"Multipart", "POST", "/todos", "--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nx\r\n--b--\r\n", map[string]string{"Content-Type": "multipart/form-data; boundary=b"}, 415, "unsupported_media_type"},
		{"XML", "POST", "/todos", `<todo><title>x</title></todo>`, map[string]string{"Content-Type": "application/xml"}, 415, "unsupported_media_type"},
		{"MalformedContentType", "POST", "/todos", `{"title":"x"}`, map[string]string{"Content-Type": "application/json; charset"}, 415, "unsupported_media_type"},
		{"JSONInAnotherCharset", "POST", "/todos", `{"title":"x"}`, map[string]string{"Content-Type": "application/json; charset=latin1"}, 415, "unsupported_media_type"},
		{"CompressedBody", "POST", "/todos", `{"title":"x"}`, map[string]string{"Content-Encoding": "gzip"}, 415, "unsupported_media_type"},
		{"CompleteAsTextPlain", "POST", "/todos/" + unknown + "/complete", `x`, map[string]string{"Content-Type": "text/plain", httpidempotency.HeaderKey: "plain-complete"}, 415, "unsupported_media_type"},
		{"UnknownRouteWithKey", "POST", "/nope", `{"title":"x"}`, key("unknown-route"), 404, "not_found"},
		{"WrongMethodWithKey", "POST", "/activity", `{"title":"x"}`, key("wrong-method"), 405, "method_not_allowed"},
		{"OversizedBody", "POST", "/todos", huge, nil, 413, httpidempotency.CodeBodyTooLarge},
		{"OversizedBodyWithKey", "POST", "/todos", huge, key("big"), 413, httpidempotency.CodeBodyTooLarge},
		{"InvalidTitleWithKey", "POST", "/todos", `{"title":""}`, key("empty"), 400, "invalid_title"},
		{"KeyTooLong", "POST", "/todos", `{"title":"x"}`, key(strings.Repeat("k", 256)), 400, httpidempotency.CodeKeyInvalid},
		{"KeyNotASCII", "POST", "/todos", `{"title":"x"}`, key("clé"), 400, httpidempotency.CodeKeyInvalid},
		{"BadIDGet", "GET", "/todos/nope", ``, nil, 400, "invalid_id"},
		{"UpperCaseIDGet", "GET", "/todos/" + strings.ToUpper("0192f7e0-6c1a-7b3e-9f4d-2a5b8c9d0e1f"), ``, nil, 400, "invalid_id"},
		{"BadIDComplete", "POST", "/todos/nope/complete", ``, nil, 400, "invalid_id"},
		{"BadIDDelete", "DELETE", "/todos/nope", ``, nil, 400, "invalid_id"},
		{"UnknownIDGet", "GET", "/todos/" + unknown, ``, nil, 404, "todo_not_found"},
		{"UnknownIDComplete", "POST", "/todos/" + unknown + "/complete", ``, nil, 404, "todo_not_found"},
		{"UnknownIDDelete", "DELETE", "/todos/" + unknown, ``, nil, 404, "todo_not_found"},
		{"LimitZero", "GET", "/todos?limit=0", ``, nil, 400, "invalid_limit"},
		{"LimitAboveMax", "GET", "/todos?limit=101", ``, nil, 400, "invalid_limit"},
		{"LimitNegative", "GET", "/todos?limit=-1", ``, nil, 400, "invalid_limit"},
		{"LimitNotANumber", "GET", "/todos?limit=ten", ``, nil, 400, "invalid_limit"},
		{"CursorNotBase64", "GET", "/todos?cursor=%21%21%21", ``, nil, 400, "invalid_cursor"},
		{"CursorJunk", "GET", "/todos?cursor=" + junkCursor, ``, nil, 400, "invalid_cursor"},
		{"ActivityCursorJunk", "GET", "/activity?cursor=abc", ``, nil, 400, "invalid_cursor"},
		{"UnknownRoute", "GET", "/nope", ``, nil, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := a.do(tt.method, tt.path, tt.body, tt.header)
			require.NoError(t, err)
			require.Equal(t, tt.wantStatus, r.status, "body: %s", r.body)
			require.Equal(t, "application/json", r.header.Get("Content-Type"))
			require.Equal(t, tt.wantCode, r.errorCode(t), "body: %s", r.body)
		})
	}
	require.Equal(t, 0, a.count("todos"), "nothing written")
	require.Equal(t, 0, a.count("idempotency_records"), "no idempotency record either, keys or not")
	a.awaitDelivered()
	require.Empty(t, a.activity(), "no event recorded")
	require.True(t, bytes.Equal(a.mustDo("GET", "/todos", "", nil).body, []byte("{\"items\":[],\"next_cursor\":null}\n")))
}
