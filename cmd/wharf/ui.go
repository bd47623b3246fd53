package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wharf-go/wharf/console"
)

// uiFlags are the flags of wharf ui.
type uiFlags struct {
	addr          string
	token         string
	readOnly      bool
	statsInterval time.Duration
	tlsCert       string
	tlsKey        string
	insecureHTTP  bool
	secureCookies bool
	allowHosts    []string
}

// Defaults of wharf ui.
const (
	defaultUIAddr = "127.0.0.1:8080"
	uiTokenEnv    = "WHARF_UI_TOKEN"
	minTokenLen   = 16
)

func uiFlagSet(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.f.ui.addr, "addr", defaultUIAddr, "listen on this address; anything but a loopback address needs a token and TLS (or --insecure-http)")
	fs.StringVar(&c.f.ui.token, "token", "", "require this token (default $"+uiTokenEnv+"; prefer the variable: a command line is visible to other users)")
	fs.BoolVar(&c.f.ui.readOnly, "read-only", false, "hide and refuse every action (requeue, purge)")
	fs.DurationVar(&c.f.ui.statsInterval, "stats-interval", 0, "least time between two counts of a table (default 5s)")
	fs.StringVar(&c.f.ui.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain) file; needs --tls-key")
	fs.StringVar(&c.f.ui.tlsKey, "tls-key", "", "the PEM private key file of --tls-cert")
	fs.BoolVar(&c.f.ui.insecureHTTP, "insecure-http", false, "serve plain HTTP on an address other machines reach (the token and cookies cross the network in clear): "+
		"only behind a TLS-terminating proxy or on a network you trust")
	fs.BoolVar(&c.f.ui.secureCookies, "secure-cookies", false, "mark cookies Secure although requests arrive over plain HTTP: behind a TLS-terminating proxy")
	fs.Func("allow-host", "also answer requests for this Host (host, or host:port), such as the name a proxy forwards; repeatable. "+
		"On a loopback address only localhost, 127.0.0.1 and ::1 are answered by default (against DNS rebinding)", func(v string) error {
		c.f.ui.allowHosts = append(c.f.ui.allowHosts, v)
		return nil
	})
}

// isLoopback reports whether host (of an address to listen on) is only
// reachable from this machine. An empty host listens everywhere.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// uiServe serves the web console until ctx ends.
func uiServe(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return usageErrorf("takes no arguments (got %q)", args)
	}
	f := c.f.ui
	host, _, err := net.SplitHostPort(f.addr)
	if err != nil {
		return usageErrorf("--addr %q: %v; use host:port, such as %s", f.addr, err, defaultUIAddr)
	}
	token, tokenFrom := f.token, "--token"
	if token == "" {
		token, tokenFrom = c.getenv(uiTokenEnv), uiTokenEnv
	}
	switch {
	case token == "" && !isLoopback(host):
		return usageErrorf("--addr %s is reachable from other machines, and anyone who reaches the console can requeue and purge: "+
			"set a token in %s (or --token) of at least %d characters, or listen on 127.0.0.1", f.addr, uiTokenEnv, minTokenLen)
	case token != "" && len(token) < minTokenLen:
		return usageErrorf("the token of %s has %d characters; use at least %d random ones (e.g. openssl rand -hex 16)", tokenFrom, len(token), minTokenLen)
	case f.statsInterval < 0:
		return usageErrorf("--stats-interval %v is negative", f.statsInterval)
	case (f.tlsCert == "") != (f.tlsKey == ""):
		return usageErrorf("--tls-cert and --tls-key go together: give the certificate file and its private key file")
	case f.tlsCert != "" && f.insecureHTTP:
		return usageErrorf("--insecure-http and --tls-cert contradict each other: drop --insecure-http to serve HTTPS")
	case f.tlsCert == "" && !f.insecureHTTP && !isLoopback(host):
		return usageErrorf("--addr %s is reachable from other machines, and over plain HTTP the token and the session cookie cross the network in clear: "+
			"serve HTTPS (--tls-cert, --tls-key), or pass --insecure-http behind a TLS-terminating proxy or on a network you trust", f.addr)
	}
	var tlsConf *tls.Config
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return usageErrorf("--tls-cert %s, --tls-key %s: %v; give a PEM certificate and its matching PEM private key", f.tlsCert, f.tlsKey, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	hosts := uiAllowedHosts(host, f.allowHosts)
	drv, err := c.openChecked(ctx)
	if err != nil {
		return err
	}
	title := drv.Dialect() + " · " + databaseLabel(c.url) + " · " + c.outboxTableName()
	con, err := console.New(console.Options{
		Outbox: drv.Outbox(), Idempotency: drv.Idempotency(), Title: title, ReadOnly: f.readOnly,
		StatsInterval: f.statsInterval, Logger: c.options().Logger, AllowedHosts: hosts, SecureCookies: f.secureCookies,
	})
	if err != nil {
		return usageErrorf("%w (--allow-host %q)", err, f.allowHosts)
	}
	var h http.Handler = con
	if token != "" {
		h = newTokenGate(token, con, f.secureCookies)
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", f.addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConf}
	served := make(chan error, 1)
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
		go func() { served <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { served <- srv.Serve(ln) }()
	}

	mode := ""
	if f.readOnly {
		mode = " (read-only)"
	}
	fmt.Fprintf(c.stdout, "wharf ui: serving the console of %s%s at %s://%s/\n", title, mode, scheme, ln.Addr())
	if token != "" {
		fmt.Fprintf(c.stdout, "A token is required (from %s): open the address and enter it, or send \"Authorization: Bearer <token>\".\n", tokenFrom)
		if tokenFrom == "--token" {
			fmt.Fprintf(c.stderr, "warning: --token is visible to other users of this machine (ps); prefer %s\n", uiTokenEnv)
		}
	} else {
		fmt.Fprintf(c.stdout, "Only this machine can reach it; listening anywhere else requires a token (%s) and TLS (--tls-cert, --tls-key).\n", uiTokenEnv)
	}
	if len(hosts) > 0 {
		fmt.Fprintf(c.stdout, "It answers requests for %s only (--allow-host adds one).\n", strings.Join(hosts, ", "))
	}
	fmt.Fprintln(c.stdout, "Ctrl-C stops it.")

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// uiAllowedHosts returns the Host headers the console answers
// (console.Options.AllowedHosts): on a loopback address the loopback names,
// the address itself and extra; elsewhere extra alone, where none means any
// (the token guards that console, and the name it is reached by is not
// known here).
func uiAllowedHosts(listenHost string, extra []string) []string {
	if !isLoopback(listenHost) {
		return extra
	}
	hosts := console.LoopbackHosts()
	if ip := net.ParseIP(listenHost); ip != nil && !ip.Equal(net.IPv4(127, 0, 0, 1)) && !ip.Equal(net.IPv6loopback) {
		hosts = append(hosts, listenHost) // another loopback address, such as 127.0.0.2
	}
	return append(hosts, extra...)
}

// databaseLabel names the database of u for the console's header: host
// and database, or the SQLite file; never user, password or parameters.
func databaseLabel(u string) string {
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return "database"
	case p.Scheme == "file" || p.Scheme == "sqlite":
		if p.Opaque != "" {
			return p.Opaque
		}
		return p.Path
	}
	return p.Host + p.Path
}

// tokenGate admits requests that carry the token (Authorization: Bearer),
// or the session cookie that its login form sets for the token. Requests
// for a Host the console does not answer go to the console, which refuses
// them, so the login form is refused alike.
type tokenGate struct {
	token   []byte
	session string // the cookie's value: an HMAC of the token under a key of this process
	next    *console.Console
	origin  *http.CrossOriginProtection
	secure  bool // Secure cookies over plain HTTP (--secure-cookies)
}

const sessionCookie = "wharf_ui_session"

func newTokenGate(token string, next *console.Console, secureCookies bool) *tokenGate {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(token))
	return &tokenGate{token: []byte(token), session: base64.RawURLEncoding.EncodeToString(m.Sum(nil)), next: next,
		origin: http.NewCrossOriginProtection(), secure: secureCookies}
}

func (g *tokenGate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.next.AllowsHost(r.Host) {
		g.next.ServeHTTP(w, r) // refused there: 421
		return
	}
	if r.URL.Path == "/login" {
		g.login(w, r)
		return
	}
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && hmac.Equal([]byte(bearer), g.token) {
		g.next.ServeHTTP(w, r)
		return
	}
	if ck, err := r.Cookie(sessionCookie); err == nil && hmac.Equal([]byte(ck.Value), []byte(g.session)) {
		g.next.ServeHTTP(w, r)
		return
	}
	if r.Method == http.MethodGet {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	http.Error(w, "a token is required: log in at /login or send Authorization: Bearer <token>", http.StatusUnauthorized)
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wharf ui · token</title></head>
<body><main><h1>wharf ui</h1>
<p>This console requires the token that wharf ui was started with (WHARF_UI_TOKEN or --token).</p>
{{if .}}<p id="login-error"><strong>{{.}}</strong></p>{{end}}
<form method="post" action="/login"><label>Token <input type="password" name="token" autocomplete="current-password" autofocus required></label>
<button type="submit">Open the console</button></form></main></body></html>
`))

func (g *tokenGate) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	switch r.Method {
	case http.MethodGet:
		_ = loginPage.Execute(w, "")
		return
	case http.MethodPost:
	default:
		http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
		return
	}
	if err := g.origin.Check(r); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	if !hmac.Equal([]byte(r.PostFormValue("token")), g.token) {
		w.WriteHeader(http.StatusUnauthorized)
		_ = loginPage.Execute(w, "That is not the token.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: g.session, Path: "/", HttpOnly: true, Secure: r.TLS != nil || g.secure,
		SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
