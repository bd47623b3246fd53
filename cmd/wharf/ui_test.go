package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
)

// TestUIRefusesBadOrUnsafeSettings starts wharf ui with settings it must
// refuse before opening the database: it serves nothing, exits 2 and says
// what to change.
func TestUIRefusesBadOrUnsafeSettings(t *testing.T) {
	t.Parallel()
	const token = "0123456789abcdef0123"
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
		{"OpenlyOverPlainHTTP", []string{"ui", "--addr", "0.0.0.0:8080"}, map[string]string{uiTokenEnv: token},
			"--addr 0.0.0.0:8080 is reachable from other machines, and over plain HTTP the token and the session cookie cross the network in clear: serve HTTPS (--tls-cert, --tls-key), or pass --insecure-http"},
		{"CertificateWithoutItsKey", []string{"ui", "--tls-cert", "cert.pem"}, nil, "--tls-cert and --tls-key go together"},
		{"KeyWithoutItsCertificate", []string{"ui", "--tls-key", "key.pem"}, nil, "--tls-cert and --tls-key go together"},
		{"InsecureHTTPWithTLS", []string{"ui", "--tls-cert", "cert.pem", "--tls-key", "key.pem", "--insecure-http"}, nil,
			"--insecure-http and --tls-cert contradict each other"},
		{"MissingCertificate", []string{"ui", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"}, nil,
			"--tls-cert /nonexistent/cert.pem, --tls-key /nonexistent/key.pem: open /nonexistent/cert.pem: no such file or directory"},
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

func TestUIAllowedHosts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, listen string
		extra, want  []string
	}{
		{"LoopbackAddress", "127.0.0.1", nil, []string{"localhost", "127.0.0.1", "::1"}},
		{"AnotherLoopbackAddress", "127.0.0.2", nil, []string{"localhost", "127.0.0.1", "::1", "127.0.0.2"}},
		{"LocalhostWithAnAllowedHost", "localhost", []string{"ops.example.com"}, []string{"localhost", "127.0.0.1", "::1", "ops.example.com"}},
		{"AllInterfacesAnswerAnyHost", "0.0.0.0", nil, nil},
		{"AllInterfacesWithAnAllowedHost", "", []string{"ops.example.com:8443"}, []string{"ops.example.com:8443"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, uiAllowedHosts(tc.listen, tc.extra))
		})
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
	m := regexp.MustCompile(`at (https?://127\.0\.0\.1:\d+)/`).FindStringSubmatch(p.stdout)
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

// seedDeadLetter dead-letters a message in the database of dbURL and
// returns its driver and the message's ID.
func seedDeadLetter(t *testing.T, dbURL string) (*wharf.Driver, string) {
	t.Helper()
	ctx := context.Background()
	drv, err := wharf.Open(ctx, dbURL, wharf.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	ob := drv.Outbox()
	_, err = ob.Enqueue(ctx, ports.OutboxMessage{Topic: "audit", Payload: json.RawMessage(`{}`)})
	require.NoError(t, err)
	claimed, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 1, Lease: time.Minute, Topics: []string{"audit"}})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	require.NoError(t, ob.DeadLetter(ctx, claimed[0].Claim(), "no such mailbox"))
	return drv, claimed[0].ID
}

// statusIn returns the stored status of id.
func statusIn(t *testing.T, drv *wharf.Driver, id string) ports.MessageStatus {
	t.Helper()
	recs, err := drv.Outbox().List(context.Background(), ports.OutboxFilter{ID: id})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	return recs[0].Status
}

// TestUIRefusesOtherHosts plays DNS rebinding against wharf ui on
// 127.0.0.1: requests that reach its port under another host name (a page
// of attacker.example re-resolved to 127.0.0.1, whose Origin therefore
// matches its Host) are refused with 421, pages, login form and requeue
// alike; requests for the loopback names, or an --allow-host, are served.
func TestUIRefusesOtherHosts(t *testing.T) {
	t.Parallel()
	const token = "tok-0123456789abcdef"
	for _, tc := range []struct {
		name    string
		args    []string
		token   string
		served  []string // besides 127.0.0.1 and localhost
		refused []string
		says    string
	}{
		{"WithoutAToken", nil, "", nil, []string{"attacker.example", "ops.example.com"}, "It answers requests for localhost, 127.0.0.1, ::1 only"},
		{"WithAToken", nil, token, nil, []string{"attacker.example"}, "It answers requests for localhost, 127.0.0.1, ::1 only"},
		{"WithAnAllowedHost", []string{"--allow-host", "ops.example.com"}, "", []string{"ops.example.com"}, []string{"attacker.example"},
			"It answers requests for localhost, 127.0.0.1, ::1, ops.example.com only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := newDatabase(t, "sqlite")
			env := []string{db.envVar + "=" + db.url}
			if tc.token != "" {
				env = append(env, uiTokenEnv+"="+tc.token)
			}
			w := newRunner(t, env...)
			w.must(exitOK, "", "migrate", "up")
			drv, dead := seedDeadLetter(t, db.url)
			p := startUI(t, w, tc.args...)
			require.Contains(t, p.stdout, tc.says)
			port := strings.TrimPrefix(p.base, "http://127.0.0.1:")
			c := httpClient(t)
			// send reaches the console's address with host:port as Host
			// (and a form's Origin), the cookies of c and the token if any.
			send := func(method, path, host string, form url.Values) (int, string) {
				req, err := http.NewRequest(method, p.base+path, strings.NewReader(form.Encode()))
				require.NoError(t, err)
				req.Host = host + ":" + port
				if tc.token != "" && path != "/login" {
					req.Header.Set("Authorization", "Bearer "+tc.token)
				}
				if method == http.MethodPost {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Origin", "http://"+req.Host)
				}
				code, body, _ := fetch(t, c, req)
				return code, body
			}

			for _, host := range append([]string{"127.0.0.1", "localhost"}, tc.served...) {
				code, body := send(http.MethodGet, "/dead", host, nil)
				require.Equal(t, http.StatusOK, code, "%s: %s", host, body)
				require.Contains(t, body, dead, host)
			}
			_, page := send(http.MethodGet, "/dead", "127.0.0.1", nil)
			csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
			require.NotNil(t, csrf)
			requeue := url.Values{"csrf": {csrf[1]}, "only": {dead}}
			for _, host := range tc.refused {
				for _, path := range []string{"/", "/dead", "/login"} {
					code, body := send(http.MethodGet, path, host, nil)
					require.Equal(t, http.StatusMisdirectedRequest, code, "%s%s: %s", host, path, body)
					require.Contains(t, body, `this console does not answer to host "`+host+":"+port+`"`)
					require.NotContains(t, body, dead)
					require.NotContains(t, body, `name="csrf"`)
				}
				code, body := send(http.MethodPost, "/login", host, url.Values{"token": {token}})
				require.Equal(t, http.StatusMisdirectedRequest, code, body)
				code, body = send(http.MethodPost, "/dead/requeue", host, requeue)
				require.Equal(t, http.StatusMisdirectedRequest, code, body)
				require.Equal(t, ports.StatusDead, statusIn(t, drv, dead), "nothing changed")
			}
			code, body := send(http.MethodPost, "/dead/requeue", "127.0.0.1", requeue)
			require.Equal(t, http.StatusSeeOther, code, "the same requeue for 127.0.0.1 works: %s", body)
			require.Equal(t, ports.StatusPending, statusIn(t, drv, dead))
			p.stop(t)
		})
	}
}

// selfSignedCert writes a self-signed certificate for 127.0.0.1 and
// localhost and its key to PEM files, and returns them with a pool that
// trusts the certificate.
func selfSignedCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wharf ui test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600))
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// requireCookie requires that hdr sets the cookie name, HTTP-only, and
// Secure when secure.
func requireCookie(t *testing.T, hdr http.Header, name string, secure bool) {
	t.Helper()
	for _, line := range hdr.Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		require.NoError(t, err)
		if ck.Name == name {
			require.Equal(t, secure, ck.Secure, "Secure attribute of %s", line)
			require.True(t, ck.HttpOnly, line)
			return
		}
	}
	require.Failf(t, "cookie not set", "no %s in %q", name, hdr.Values("Set-Cookie"))
}

// TestUIServesHTTPSAndSecureCookies serves the console with a real TLS
// listener (a certificate made here) and over plain HTTP, with and without
// a token, and checks the scheme and the Secure attribute of its cookies.
func TestUIServesHTTPSAndSecureCookies(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSignedCert(t)
	const token = "tok-0123456789abcdef"
	tlsArgs := []string{"--tls-cert", certFile, "--tls-key", keyFile}
	for _, tc := range []struct {
		name          string
		args          []string
		token         string
		https, secure bool
	}{
		{"PlainHTTP", nil, token, false, false},
		{"HTTPS", tlsArgs, "", true, true},
		{"HTTPSWithAToken", tlsArgs, token, true, true},
		{"PlainHTTPBehindATLSProxy", []string{"--secure-cookies"}, token, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := newDatabase(t, "sqlite")
			env := []string{db.envVar + "=" + db.url}
			if tc.token != "" {
				env = append(env, uiTokenEnv+"="+tc.token)
			}
			w := newRunner(t, env...)
			w.must(exitOK, "", "migrate", "up")
			_, dead := seedDeadLetter(t, db.url)
			p := startUI(t, w, tc.args...)
			scheme := "http://"
			if tc.https {
				scheme = "https://"
			}
			require.True(t, strings.HasPrefix(p.base, scheme), p.stdout)
			c := httpClient(t)
			c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
			t.Cleanup(c.CloseIdleConnections)
			if tc.token != "" {
				code, body, hdr := postForm(t, c, p.base+"/login", url.Values{"token": {tc.token}})
				require.Equal(t, http.StatusSeeOther, code, body)
				requireCookie(t, hdr, "wharf_ui_session", tc.secure)
			}
			req, err := http.NewRequest(http.MethodGet, p.base+"/dead", nil)
			require.NoError(t, err)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			code, body, hdr := fetch(t, c, req)
			require.Equal(t, http.StatusOK, code, body)
			require.Contains(t, body, dead)
			requireCookie(t, hdr, "wharf_console_csrf", tc.secure)
			if tc.https {
				code, body, _ := get(t, httpClient(t), "http://"+strings.TrimPrefix(p.base, "https://")+"/")
				require.Equal(t, http.StatusBadRequest, code, "no plain HTTP on the TLS port")
				require.Contains(t, body, "HTTP request to an HTTPS server")
			}
			p.stop(t)
		})
	}
}
