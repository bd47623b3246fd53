package console_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/console"
	"github.com/wharf-go/wharf/console/internal/consoletest"
	"github.com/wharf-go/wharf/ports"
)

// TestHostileContentIsEscaped renders a message whose payload, topic, key,
// headers and last error are markup, on every page that shows them: the
// markup arrives as text, never as elements.
func TestHostileContentIsEscaped(t *testing.T) {
	t.Parallel()
	for _, dialect := range consoletest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db := consoletest.Open(t, dialect)
			seed := consoletest.Seed(t, db, 1, 1)
			s := newServer(t, console.Options{Outbox: db.Driver.Outbox(), Idempotency: db.Driver.Idempotency()})
			raw := []string{"<script>window", "<img src=x", "<svg onload", "<iframe src", `onerror="window`, `onload="window`, "</pre><script"}
			for _, path := range []string{
				"/messages?limit=100", "/dead?limit=100", "/messages/" + url.PathEscape(seed.Hostile),
				"/dead?topic=" + url.QueryEscape(consoletest.HostileTopic) + "&key=" + url.QueryEscape(consoletest.HostileKey),
			} {
				t.Run(strings.SplitN(path, "?", 2)[0], func(t *testing.T) {
					body := s.get(path, http.StatusOK).body
					for _, r := range raw {
						require.NotContains(t, body, r, "markup from the data reached the page as markup")
					}
					require.Contains(t, body, esc(consoletest.HostileTopic))
					require.Contains(t, body, esc(consoletest.HostileKey))
				})
			}
			body := s.get("/messages/"+url.PathEscape(seed.Hostile), http.StatusOK).body
			require.Contains(t, body, esc(`"html": "<script>window.__pwned=1;`), "the payload, pretty-printed, as text")
			require.Contains(t, body, esc(consoletest.HostileError))
			require.Contains(t, body, esc(consoletest.HostileHeader))
			// The confirmation page repeats the filter.
			res := s.post("/dead/purge", url.Values{"csrf": {s.csrf(s.get("/dead", http.StatusOK))}, "all": {"1"},
				"topic": {consoletest.HostileTopic}, "key": {consoletest.HostileKey}})
			require.Equal(t, http.StatusOK, res.status)
			for _, r := range raw {
				require.NotContains(t, res.body, r)
			}
			require.Contains(t, res.body, "1 dead letter(s) of topic <b>"+esc(consoletest.HostileTopic)+"</b>")
		})
	}
}

// TestStateChangesNeedCSRFProtection submits actions the ways an attacker
// could, and checks each is refused and changes nothing.
func TestStateChangesNeedCSRFProtection(t *testing.T) {
	t.Parallel()
	for _, dialect := range consoletest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db := consoletest.Open(t, dialect)
			seed := consoletest.Seed(t, db, 1, 2)
			s := newServer(t, console.Options{Outbox: db.Driver.Outbox(), Idempotency: db.Driver.Idempotency()})
			token := s.csrf(s.get("/dead", http.StatusOK))
			other := newServer(t, console.Options{Outbox: db.Driver.Outbox()}) // another key
			otherToken := other.csrf(other.get("/dead", http.StatusOK))
			requeue := url.Values{"only": {seed.Dead[0]}}
			with := func(tok string) url.Values {
				v := url.Values{"csrf": {tok}}
				for k, vs := range requeue {
					v[k] = vs
				}
				return v
			}
			for _, tc := range []struct {
				name string
				send func() response
				says string
			}{
				{"WithoutAToken", func() response { return s.post("/dead/requeue", requeue) }, "CSRF token is missing or stale"},
				{"WithATokenOfAnotherConsole", func() response { return s.post("/dead/requeue", with(otherToken)) }, "CSRF token is missing or stale"},
				{"WithAForgedToken", func() response { return s.post("/dead/requeue", with(strings.Repeat("A", 43))) }, "CSRF token is missing or stale"},
				{"FromAnotherSite", func() response {
					req, _ := http.NewRequest(http.MethodPost, s.srv.URL+prefix+"/dead/requeue", strings.NewReader(with(token).Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Sec-Fetch-Site", "cross-site")
					return s.do(req)
				}, "cross-origin"},
				{"FromAnotherOrigin", func() response {
					req, _ := http.NewRequest(http.MethodPost, s.srv.URL+prefix+"/dead/purge", strings.NewReader(with(token).Encode()+"&confirm=1"))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("Origin", "https://evil.example")
					return s.do(req)
				}, "cross-origin"},
				{"WithTheTokenButNotItsCookie", func() response {
					req, _ := http.NewRequest(http.MethodPost, s.srv.URL+prefix+"/dead/requeue", strings.NewReader(with(token).Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					res, err := http.DefaultClient.Do(req) // no cookie jar
					require.NoError(t, err)
					_ = res.Body.Close()
					return response{status: res.StatusCode, body: "CSRF token is missing or stale"}
				}, "CSRF token is missing or stale"},
				{"AsAGet", func() response {
					req, _ := http.NewRequest(http.MethodGet, s.srv.URL+prefix+"/dead/requeue?"+with(token).Encode(), nil)
					return s.do(req)
				}, ""},
			} {
				t.Run(tc.name, func(t *testing.T) {
					res := tc.send()
					require.Contains(t, []int{http.StatusForbidden, http.StatusNotFound}, res.status, res.body)
					require.Contains(t, strings.ToLower(res.body), strings.ToLower(tc.says))
					require.Equal(t, ports.StatusDead, statusOf(t, db.Driver, seed.Dead[0]), "nothing changed")
				})
			}
			res := s.post("/dead/requeue", with(token))
			require.Equal(t, http.StatusSeeOther, res.status, "the console's own form works: %s", res.body)
			require.Equal(t, ports.StatusPending, statusOf(t, db.Driver, seed.Dead[0]))
		})
	}
}

// TestReadOnlyHidesAndRefusesEveryAction reads every page of a read-only
// console (no form that changes anything, no token) and submits every
// action (refused, nothing changes).
func TestReadOnlyHidesAndRefusesEveryAction(t *testing.T) {
	t.Parallel()
	for _, dialect := range consoletest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			db := consoletest.Open(t, dialect)
			seed := consoletest.Seed(t, db, 1, 2)
			s := newServer(t, console.Options{Outbox: db.Driver.Outbox(), Idempotency: db.Driver.Idempotency(), ReadOnly: true,
				Title: "orders (read-only)"})
			for _, path := range []string{"/", "/messages", "/dead", "/messages/" + seed.Dead[0], "/idempotency"} {
				body := s.get(path, http.StatusOK).body
				require.Contains(t, body, `class="badge ro"`, path)
				for _, action := range []string{`method="post"`, "Requeue", "Purge", `name="csrf"`, "/dead/requeue", "/dead/purge", "/idempotency/purge"} {
					require.NotContains(t, body, action, path)
				}
			}
			u, err := url.Parse(s.srv.URL)
			require.NoError(t, err)
			require.Empty(t, s.client.Jar.Cookies(u), "no CSRF cookie in read-only mode")
			for _, path := range []string{"/dead/requeue", "/dead/purge", "/idempotency/purge"} {
				res := s.post(path, url.Values{"only": {seed.Dead[0]}, "all": {"1"}, "confirm": {"1"}})
				require.Equal(t, http.StatusForbidden, res.status, path)
				require.Contains(t, res.body, "read-only")
			}
			st, err := db.Driver.Outbox().Stats(context.Background())
			require.NoError(t, err)
			require.Equal(t, int64(3), st.Dead)
			ist, err := db.Driver.Idempotency().Stats(context.Background())
			require.NoError(t, err)
			require.Equal(t, int64(2), ist.Expired)
		})
	}
}

// TestOptionsAreValidated checks that bad options are errors that say
// what to change.
func TestOptionsAreValidated(t *testing.T) {
	t.Parallel()
	db := consoletest.Open(t, "sqlite")
	ob := db.Driver.Outbox()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	for _, tc := range []struct {
		name string
		opts console.Options
		says string
	}{
		{"NoOutbox", console.Options{}, "Outbox is nil"},
		{"NegativeInterval", console.Options{Outbox: ob, StatsInterval: -1}, "StatsInterval -1ns is negative"},
		{"HugePage", console.Options{Outbox: ob, PageSize: 5000}, "PageSize 5000 must be within 0..1000"},
		{"ShortKey", console.Options{Outbox: ob, CSRFKey: []byte("short")}, "CSRFKey has 5 bytes"},
		{"PrefixWithoutSlash", console.Options{Outbox: ob, PathPrefix: "admin/"}, `PathPrefix "admin/" must start with /`},
		{"EmptyAllowedHost", console.Options{Outbox: ob, AllowedHosts: []string{""}}, `AllowedHosts[0] "" is empty; use a host name`},
		{"AllowedHostWithAScheme", console.Options{Outbox: ob, AllowedHosts: []string{"localhost", "https://ops.example.com"}},
			`AllowedHosts[1] "https://ops.example.com" is not a host`},
		{"AllowedHostWithANamedPort", console.Options{Outbox: ob, AllowedHosts: []string{"localhost:http"}}, `has port "http", not a number`},
		{"AllowedPortWithoutAHost", console.Options{Outbox: ob, AllowedHosts: []string{":8080"}}, `AllowedHosts[0] ":8080" has no host`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := console.New(tc.opts)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tc.says)
		})
	}
	_, err := console.New(console.Options{Outbox: ob, CSRFKey: key, PathPrefix: "/admin/wharf"})
	require.NoError(t, err)
	require.False(t, errors.Is(err, ports.ErrInvalidArgument))
}
