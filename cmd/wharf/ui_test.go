package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
)

func TestUIRefusesToListenOpenlyWithoutAToken(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		says string
	}{
		{"AllInterfaces", []string{"ui", "--addr", "0.0.0.0:8080"}, nil, "--addr 0.0.0.0:8080 is reachable from other machines"},
		{"NoHost", []string{"ui", "--addr", ":8080"}, nil, "--addr :8080 is reachable from other machines"},
		{"ShortTokenFromTheVariable", []string{"ui", "--addr", "0.0.0.0:8080"}, map[string]string{uiTokenEnv: "short"},
			"the token of WHARF_UI_TOKEN has 5 characters; use at least 16"},
		{"ShortTokenFromTheFlag", []string{"ui", "--token", "abc"}, nil, "the token of --token has 3 characters"},
		{"BadAddress", []string{"ui", "--addr", "localhost"}, nil, `--addr "localhost": address localhost: missing port in address`},
		{"Arguments", []string{"ui", "now"}, nil, `takes no arguments (got ["now"])`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			code := run(context.Background(), tc.args, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut,
				getenv: func(k string) string { return tc.env[k] }})
			require.Equal(t, exitUsage, code)
			require.Contains(t, errOut.String(), tc.says)
			require.Empty(t, out.String(), "nothing served")
		})
	}
}

func TestUIIsLoopback(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{"127.0.0.1": true, "127.0.0.2": true, "::1": true, "localhost": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "example.com": false} {
		require.Equal(t, want, isLoopback(host), host)
	}
}

// uiProcess is a running wharf ui.
type uiProcess struct {
	base   string // http://127.0.0.1:port
	stdout string // what it printed before serving
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

// startUI runs wharf ui with extra arguments on a free port and waits for
// its address line.
func startUI(t *testing.T, w *runner, args ...string) *uiProcess {
	t.Helper()
	cmd := exec.Command(w.bin, append([]string{"ui", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = w.env
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	p := &uiProcess{cmd: cmd, stderr: new(bytes.Buffer)}
	cmd.Stderr = p.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	r := bufio.NewReader(stdout)
	var lines []string
	for {
		line, err := r.ReadString('\n')
		require.NoError(t, err, "wharf ui stopped: %s", p.stderr)
		lines = append(lines, line)
		if strings.HasPrefix(line, "Ctrl-C") {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	p.stdout = strings.Join(lines, "")
	m := regexp.MustCompile(`at (http://127\.0\.0\.1:\d+)/`).FindStringSubmatch(p.stdout)
	require.NotNil(t, m, p.stdout)
	p.base = m[1]
	return p
}

// stop interrupts it and requires a clean exit.
func (p *uiProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	require.NoError(t, p.cmd.Wait(), "exit status 0 after Ctrl-C; stderr: %s", p.stderr)
}

func httpClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func fetch(t *testing.T, c *http.Client, req *http.Request) (int, string, http.Header) {
	t.Helper()
	res, err := c.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(b), res.Header
}

func get(t *testing.T, c *http.Client, u string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	return fetch(t, c, req)
}

func postForm(t *testing.T, c *http.Client, u string, form url.Values) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return fetch(t, c, req)
}

var dataCountRE = regexp.MustCompile(`data-count="(ready|scheduled|leased|dead)" data-value="(\d+)"`)

// TestUIEndToEnd serves the console of each database with the built
// command, reads its counts, requeues a dead letter through its form and
// stops it with Ctrl-C.
func TestUIEndToEnd(t *testing.T) {
	t.Parallel()
	for _, dialect := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db := newDatabase(t, dialect)
			w := newRunner(t, db.envVar+"="+db.url)
			w.must(exitOK, "", "migrate", "up")
			ctx := context.Background()
			drv, err := wharf.Open(ctx, db.url, wharf.Options{})
			require.NoError(t, err)
			t.Cleanup(func() { _ = drv.Close() })
			ob := drv.Outbox()
			_, err = ob.Enqueue(ctx, ports.OutboxMessage{Topic: "mail.send", Payload: json.RawMessage(`{"to":"a@example.com"}`)},
				ports.OutboxMessage{Topic: "mail.send", Payload: json.RawMessage(`{"to":"b@example.com"}`), AvailableAt: time.Now().Add(time.Hour)},
				ports.OutboxMessage{Topic: "audit", Payload: json.RawMessage(`{}`)})
			require.NoError(t, err)
			claimed, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 1, Lease: time.Minute, Topics: []string{"audit"}})
			require.NoError(t, err)
			require.Len(t, claimed, 1)
			require.NoError(t, ob.DeadLetter(ctx, claimed[0].Claim(), "no such mailbox"))

			p := startUI(t, w)
			require.Contains(t, p.stdout, "Only this machine can reach it")
			c := httpClient(t)
			code, body, _ := get(t, c, p.base+"/")
			require.Equal(t, http.StatusOK, code)
			got := map[string]string{}
			for _, m := range dataCountRE.FindAllStringSubmatch(body, -1) {
				got[m[1]] = m[2]
			}
			require.Equal(t, map[string]string{"ready": "1", "scheduled": "1", "leased": "0", "dead": "1"}, got)
			require.Contains(t, body, dialect+" · ")

			code, body, _ = get(t, c, p.base+"/dead")
			require.Equal(t, http.StatusOK, code)
			require.Contains(t, body, claimed[0].ID)
			token := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
			require.NotNil(t, token)
			code, body, hdr := postForm(t, c, p.base+"/dead/requeue", url.Values{"csrf": {token[1]}, "only": {claimed[0].ID}})
			require.Equal(t, http.StatusSeeOther, code, body)
			require.Equal(t, "/dead?done=requeued&n=1&of=1", hdr.Get("Location"))
			st, err := ob.Stats(ctx)
			require.NoError(t, err)
			require.Zero(t, st.Dead)
			p.stop(t)
		})
	}
}

// TestUITokenAndSecrets serves a PostgreSQL database reached with a
// password of its own behind a token, and checks that the token is
// required, that the login form and the bearer header admit, and that
// neither the password nor the token appears in any page.
func TestUITokenAndSecrets(t *testing.T) {
	t.Parallel()
	base := testdb.URL(t, testdb.PostgresEnv)
	ctx := context.Background()
	admin, err := wharf.Open(ctx, base, wharf.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = admin.Close() })
	role, password := randomName("wharf_ui_"), "Pw-"+randomName("")+"-secret"
	_, err = admin.DB().ExecContext(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", role, password))
	require.NoError(t, err)
	_, err = admin.DB().ExecContext(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s", role, role))
	require.NoError(t, err)
	t.Cleanup(func() {
		_, err := admin.DB().ExecContext(context.Background(), fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", role))
		require.NoError(t, err)
		_, err = admin.DB().ExecContext(context.Background(), "DROP ROLE IF EXISTS "+role)
		require.NoError(t, err)
	})
	u, err := url.Parse(base)
	require.NoError(t, err)
	u.User, u.Path = url.UserPassword(role, password), "/"+role
	token := "tok-" + randomName("") + randomName("")
	w := newRunner(t, "POSTGRES_DB_URL="+u.String(), uiTokenEnv+"="+token)
	w.must(exitOK, "", "migrate", "up")

	p := startUI(t, w)
	require.Contains(t, p.stdout, "A token is required (from WHARF_UI_TOKEN)")
	require.NotContains(t, p.stdout, token)
	require.NotContains(t, p.stdout, password)
	c := httpClient(t)
	code, _, hdr := get(t, c, p.base+"/")
	require.Equal(t, http.StatusSeeOther, code, "no token: to the login form")
	require.Equal(t, "/login", hdr.Get("Location"))
	code, body, _ := postForm(t, c, p.base+"/dead/requeue", url.Values{})
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, body, "a token is required")
	code, body, _ = postForm(t, c, p.base+"/login", url.Values{"token": {token + "x"}})
	require.Equal(t, http.StatusUnauthorized, code)
	require.Contains(t, body, "That is not the token.")
	code, _, _ = postForm(t, c, p.base+"/login", url.Values{"token": {token}})
	require.Equal(t, http.StatusSeeOther, code)

	var pages []string
	for _, path := range []string{"/", "/live", "/messages", "/dead", "/idempotency", "/messages/none", "/login"} {
		_, body, _ := get(t, c, p.base+path)
		pages = append(pages, body)
	}
	code, body, _ = get(t, c, p.base+"/")
	require.Equal(t, http.StatusOK, code, "the session cookie admits")
	require.Contains(t, body, role, "the header names the database")
	req, err := http.NewRequest(http.MethodGet, p.base+"/messages", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	code, body, _ = fetch(t, http.DefaultClient, req)
	require.Equal(t, http.StatusOK, code, "the bearer token admits")
	pages = append(pages, body)
	for _, page := range pages {
		require.NotContains(t, page, password)
		require.NotContains(t, page, url.QueryEscape(password))
		require.NotContains(t, page, token)
	}
	p.stop(t)
	require.NotContains(t, p.stderr.String(), password)
}
