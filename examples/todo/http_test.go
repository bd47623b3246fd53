package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/httpidempotency"
)

// testWrongMethods: a path the API serves, with a method it does not, is
// answered 405 with the methods it allows, in the API's error format — and
// a key sent with it is not reserved.
func testWrongMethods(t *testing.T, a *testApp) {
	id := a.create("stay put", nil).ID
	tests := []struct {
		name, method, path string
		wantAllow          string
	}{
		{"PutTodos", http.MethodPut, "/todos", "GET, HEAD, POST"},
		{"DeleteTodos", http.MethodDelete, "/todos", "GET, HEAD, POST"},
		{"PatchTodo", http.MethodPatch, "/todos/" + id, "DELETE, GET, HEAD"},
		{"PostTodo", http.MethodPost, "/todos/" + id, "DELETE, GET, HEAD"},
		{"GetComplete", http.MethodGet, "/todos/" + id + "/complete", "POST"},
		{"PostActivity", http.MethodPost, "/activity", "GET, HEAD"},
		{"OptionsTodos", http.MethodOptions, "/todos", "GET, HEAD, POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.mustDo(tt.method, tt.path, `{"title":"x"}`, key("wrong-"+tt.name))
			require.Equal(t, http.StatusMethodNotAllowed, r.status, "body: %s", r.body)
			require.Equal(t, tt.wantAllow, r.header.Get("Allow"))
			require.Equal(t, "application/json", r.header.Get("Content-Type"))
			require.Equal(t, "method_not_allowed", r.errorCode(t))
			require.NotEmpty(t, r.header.Get("X-Request-Id"))
		})
	}
	r := a.mustDo(http.MethodGet, "/nope", "", nil)
	require.Equal(t, http.StatusNotFound, r.status, "an unknown path is still 404")
	require.Equal(t, "not_found", r.errorCode(t))
	require.Empty(t, r.header.Get("Allow"))
	require.Equal(t, 1, a.count("todos"), "nothing written")
	require.Equal(t, 0, a.count("idempotency_records"), "no key reserved on a route the API does not serve")
}

// testTitlesArriveAsSent: what is valid Unicode is stored exactly as sent,
// surrogate pairs and an explicit U+FFFD included.
func testTitlesArriveAsSent(t *testing.T, a *testApp) {
	tests := []struct{ name, body, want string }{
		{"SurrogatePairEscape", `{"title":"ship it \ud83d\ude80"}`, "ship it 🚀"},
		{"UpperCaseEscapes", `{"title":"\uD83D\uDE80"}`, "🚀"},
		{"RawUTF8", `{"title":"café ☕ 🚀"}`, "café ☕ 🚀"},
		{"ExplicitReplacementCharacter", `{"title":"a\ufffdb"}`, "a\ufffdb"},
		{"EscapedBackslashThenU", `{"title":"C:\\ud800"}`, `C:\ud800`},
		{"RightToLeftTextWithMarks", `{"title":"\u200fשלום\u200e 42"}`, "\u200fשלום\u200e 42"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := a.mustDo(http.MethodPost, "/todos", tt.body, nil)
			require.Equal(t, http.StatusCreated, r.status, "body: %s", r.body)
			var td todoJSON
			r.decode(t, &td)
			require.Equal(t, tt.want, td.Title)
			got := a.mustDo(http.MethodGet, "/todos/"+td.ID, "", nil)
			var stored todoJSON
			got.decode(t, &stored)
			require.Equal(t, tt.want, stored.Title, "read back from the database")
		})
	}
}

// testJSONContentTypes: JSON is accepted with a utf-8 charset, in any case;
// complete needs no Content-Type (it has no body) but accepts JSON's.
func testJSONContentTypes(t *testing.T, a *testApp) {
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON; charset=UTF-8"} {
		r := a.mustDo(http.MethodPost, "/todos", `{"title":"typed"}`, map[string]string{"Content-Type": ct})
		require.Equal(t, http.StatusCreated, r.status, "%s: %s", ct, r.body)
	}
	id := a.create("finish me", nil).ID
	r := a.mustDo(http.MethodPost, "/todos/"+id+"/complete", "", map[string]string{"Content-Type": "application/json", httpidempotency.HeaderKey: "done-json"})
	require.Equal(t, http.StatusOK, r.status, "body: %s", r.body)
	var td todoJSON
	require.NoError(t, json.Unmarshal(r.body, &td))
	require.True(t, td.Completed)
	require.Equal(t, 4, a.count("todos"))
}

// TestAccessLog: one line per request, with method, path, status, duration
// and the request ID the response carries — and never a body, a query, a
// header value or an Idempotency-Key.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	d := dialects()[0] // SQLite: the log does not depend on the database
	a := startAppOn(t, d, d.database(t), slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})))

	const secretTitle, secretKey, secretCursor = "title-0815-private", "key-4711-private", "cursor9private"
	type sent struct {
		method, path, query string
		status              int
		requestID           string
		replayed            bool
	}
	var requests []sent
	send := func(method, path, query, body string, header map[string]string) response {
		r := a.mustDo(method, path+query, body, header)
		require.NotEmpty(t, r.header.Get("X-Request-Id"), "%s %s", method, path)
		requests = append(requests, sent{method, path, query, r.status, r.header.Get("X-Request-Id"), r.replayed()})
		return r
	}
	created := send(http.MethodPost, "/todos", "", `{"title":"`+secretTitle+`"}`, key(secretKey))
	var td todoJSON
	created.decode(t, &td)
	send(http.MethodPost, "/todos", "", `{"title":"`+secretTitle+`"}`, key(secretKey))
	send(http.MethodGet, "/todos/"+td.ID, "", "", nil)
	send(http.MethodGet, "/todos", "?limit=5&cursor="+secretCursor, "", nil)
	send(http.MethodPut, "/todos", "", "", nil)
	send(http.MethodPost, "/todos", "", `{"title":"x"}`, map[string]string{"Content-Type": "text/plain"})
	require.Equal(t, []int{201, 201, 200, 400, 405, 415}, func() []int {
		var s []int
		for _, r := range requests {
			s = append(s, r.status)
		}
		return s
	}())

	// The line is written once the response is: wait for all of them.
	var lines []map[string]any
	a.await("one access log line per request", func() bool {
		lines = lines[:0]
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(l), &m), l)
			if m["msg"] == "request" {
				lines = append(lines, m)
			}
		}
		return len(lines) >= len(requests)
	})
	require.Len(t, lines, len(requests))
	byID := map[string]map[string]any{}
	for _, l := range lines {
		byID[l["request_id"].(string)] = l
	}
	require.Len(t, byID, len(requests), "every request has its own ID")
	for _, r := range requests {
		l, ok := byID[r.requestID]
		require.True(t, ok, "a log line for %s %s carries the response's X-Request-Id %s", r.method, r.path, r.requestID)
		require.Equal(t, "INFO", l["level"])
		require.Equal(t, r.method, l["method"])
		require.Equal(t, r.path, l["path"], "the path, without the query")
		require.Equal(t, float64(r.status), l["status"])
		require.Greater(t, l["duration"], float64(0))
		require.Contains(t, l, "bytes")
		if r.replayed {
			require.Equal(t, true, l["replayed"])
		} else {
			require.NotContains(t, l, "replayed")
		}
	}
	all := logs.String()
	for _, secret := range []string{secretTitle, secretKey, secretCursor, "limit=5", "text/plain"} {
		require.NotContains(t, all, secret, "the log holds no body, key, query or header value")
	}
}
