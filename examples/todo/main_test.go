package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// syncBuffer is an io.Writer safe for the concurrent writes of run.
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

// startRun runs the program as main does, with ctx standing in for the
// signals, and returns its base URL and the channel of run's result.
func startRun(t *testing.T, ctx context.Context, env map[string]string, out io.Writer) (string, <-chan error) {
	t.Helper()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, getenvFrom(env), out, func(u string) { ready <- u })
	}()
	select {
	case u := <-ready:
		return u, done
	case err := <-done:
		t.Fatalf("run ended before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not start listening within 30s")
	}
	return "", nil
}

func httpJSON(t *testing.T, method, url, body string, header map[string]string, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	for k, val := range header {
		req.Header.Set(k, val)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if v != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
	}
	return resp.StatusCode
}

// TestRunServesAndShutsDownCleanly runs the program twice on one SQLite
// file: the first run creates a todo, delivers its event and stops cleanly
// when its context (the signal) is cancelled; the second finds the data.
func TestRunServesAndShutsDownCleanly(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SQLITE_DB_URL": "file:" + filepath.Join(t.TempDir(), "todo.db")}

	var out syncBuffer
	ctx, cancel := context.WithCancel(t.Context())
	base, done := startRun(t, ctx, env, &out)
	var created struct{ ID string }
	require.Equal(t, http.StatusCreated, httpJSON(t, http.MethodPost, base+"/todos", `{"title":"survive a restart"}`,
		map[string]string{"Idempotency-Key": "restart-1", "Content-Type": "application/json"}, &created))
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var feed struct {
			Items []struct {
				TodoID string `json:"todo_id"`
			}
		}
		require.Equal(t, http.StatusOK, httpJSON(t, http.MethodGet, base+"/activity", "", nil, &feed))
		if len(feed.Items) == 1 {
			require.Equal(t, created.ID, feed.Items[0].TodoID)
			break
		}
		require.True(t, time.Now().Before(deadline), "the relay did not deliver the event in time")
		<-tick.C
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return within 30s of the signal")
	}
	logs := out.String()
	for _, want := range []string{"msg=listening", "Try (run the first line twice", "msg=request method=POST path=/todos status=201", "msg=\"shutting down\"", "msg=\"http server stopped\"", "msg=\"relay stopped\"", "msg=\"database closed\"", "msg=\"stopped cleanly\""} {
		require.Contains(t, logs, want)
	}
	_, err := http.Get(base + "/todos")
	require.Error(t, err, "the listener is closed")

	ctx2, cancel2 := context.WithCancel(t.Context())
	base2, done2 := startRun(t, ctx2, env, io.Discard)
	var again struct{ ID string }
	require.Equal(t, http.StatusOK, httpJSON(t, http.MethodGet, base2+"/todos/"+created.ID, "", nil, &again))
	require.Equal(t, created.ID, again.ID, "the data survived the restart (migrations are idempotent)")
	var replay struct{ ID string }
	require.Equal(t, http.StatusCreated, httpJSON(t, http.MethodPost, base2+"/todos", `{"title":"survive a restart"}`,
		map[string]string{"Idempotency-Key": "restart-1", "Content-Type": "application/json"}, &replay))
	require.Equal(t, created.ID, replay.ID, "the idempotency key survived the restart too")
	cancel2()
	require.NoError(t, <-done2)
}

// closedPort returns a loopback host:port nothing listens on: a database
// server that is down.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// TestRunFailsClearly: a start-up error says what is wrong and names where
// the database URL came from (the variable to fix), never the password.
func TestRunFailsClearly(t *testing.T) {
	t.Parallel()
	const password = "s3cret-pw"
	pgDown := "postgres://wharf:" + password + "@" + closedPort(t) + "/wharf?sslmode=disable&connect_timeout=5"
	myDown := "mysql://wharf:" + password + "@" + closedPort(t) + "/wharf"
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{name: "MalformedSQLiteURL", env: map[string]string{"SQLITE_DB_URL": "todo.db"}, wantErr: `SQLITE_DB_URL: sqlite: malformed URL "todo.db": it must start with "file:"`},
		{name: "PostgresWithoutURL", env: map[string]string{"TODO_DB": "postgres"}, wantErr: "POSTGRES_DB_URL is not set"},
		{name: "PostgresDown", env: map[string]string{"POSTGRES_DB_URL": pgDown}, wantErr: "start: POSTGRES_DB_URL: postgres: cannot connect"},
		{name: "PostgresDownChosenByTodoDB", env: map[string]string{"TODO_DB": "postgres", "POSTGRES_DB_URL": pgDown, "MYSQL_DB_URL": myDown},
			wantErr: "start: POSTGRES_DB_URL: postgres: cannot connect"},
		{name: "MySQLDown", env: map[string]string{"MYSQL_DB_URL": myDown}, wantErr: "start: MYSQL_DB_URL: mysql: "},
		{name: "SQLiteInAMissingDirectory", env: map[string]string{"SQLITE_DB_URL": "file:" + filepath.Join(t.TempDir(), "missing", "todo.db")},
			wantErr: "start: SQLITE_DB_URL: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out syncBuffer
			err := run(t.Context(), []string{"-addr", "127.0.0.1:0"}, getenvFrom(tt.env), &out, nil)
			require.Error(t, err)
			require.ErrorContains(t, err, tt.wantErr)
			require.False(t, errors.Is(err, context.Canceled))
			require.NotContains(t, err.Error(), password, "never the password")
			require.NotContains(t, out.String(), password, "nor in the log")
			t.Logf("todo: %v", err)
		})
	}
}
