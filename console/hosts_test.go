package console_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/console"
	"github.com/wharf-go/wharf/console/internal/consoletest"
	"github.com/wharf-go/wharf/ports"
)

// TestRequestsForOtherHostsAreRefused plays DNS rebinding against a
// console with AllowedHosts: requests that reach its address under another
// host name (a page of attacker.example re-resolved to 127.0.0.1, whose
// Origin therefore matches its Host) are refused before they read a page
// or requeue, and the loopback names are served.
func TestRequestsForOtherHostsAreRefused(t *testing.T) {
	t.Parallel()
	db := consoletest.Open(t, "sqlite")
	seed := consoletest.Seed(t, db, 1, 1)
	s := newServer(t, console.Options{Outbox: db.Driver.Outbox(), Idempotency: db.Driver.Idempotency(), AllowedHosts: console.LoopbackHosts()})
	port := strings.TrimPrefix(s.srv.URL, "http://127.0.0.1:")
	token := s.csrf(s.get("/dead", http.StatusOK))
	// send makes a request to the console's address with host as its Host
	// and, for a form, as its Origin, with the cookies of the jar.
	send := func(method, path, host string, form url.Values) response {
		req, err := http.NewRequest(method, s.srv.URL+prefix+path, strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.Host = host
		if method == http.MethodPost {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", "http://"+host)
		}
		return s.do(req)
	}

	for _, tc := range []struct {
		name, host string
		served     bool
	}{
		{"LoopbackAddressWithItsPort", "127.0.0.1:" + port, true},
		{"LocalhostInCapitals", "LOCALHOST:" + port, true},
		{"IPv6LoopbackInBrackets", "[::1]:" + port, true},
		{"LocalhostWithoutAPort", "localhost", true},
		{"RebindingSite", "attacker.example:" + port, false},
		{"RebindingSiteWithoutAPort", "attacker.example", false},
		{"SiteNamedAfterLocalhost", "localhost.attacker.example:" + port, false},
		{"LoopbackAddressNotListed", "127.0.0.2:" + port, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := send(http.MethodGet, "/dead", tc.host, nil)
			if tc.served {
				require.Equal(t, http.StatusOK, res.status, res.body)
				require.Contains(t, rows(res.body), seed.Dead[0])
				return
			}
			require.Equal(t, http.StatusMisdirectedRequest, res.status, res.body)
			require.Contains(t, res.body, "this console does not answer to host")
			require.Contains(t, res.body, "localhost, 127.0.0.1, ::1")
			require.NotContains(t, res.body, `name="csrf"`, "no token for another site")
			require.NotContains(t, res.body, seed.Dead[0], "nothing read")
			require.Empty(t, res.header.Values("Set-Cookie"))

			res = send(http.MethodPost, "/dead/requeue", tc.host, url.Values{"csrf": {token}, "only": {seed.Dead[0]}})
			require.Equal(t, http.StatusMisdirectedRequest, res.status, res.body)
			require.Equal(t, ports.StatusDead, statusOf(t, db.Driver, seed.Dead[0]), "nothing changed")
		})
	}
	res := send(http.MethodPost, "/dead/requeue", "127.0.0.1:"+port, url.Values{"csrf": {token}, "only": {seed.Dead[0]}})
	require.Equal(t, http.StatusSeeOther, res.status, "the same request for an allowed host works: %s", res.body)
	require.Equal(t, ports.StatusPending, statusOf(t, db.Driver, seed.Dead[0]))
}

// TestAllowedHostsMatchPortsAsListed checks an entry with a port (that
// port only) and the default without entries (every host).
func TestAllowedHostsMatchPortsAsListed(t *testing.T) {
	t.Parallel()
	ob := consoletest.Open(t, "sqlite").Driver.Outbox()
	withPort, err := console.New(console.Options{Outbox: ob, AllowedHosts: []string{"ops.example.com:8443", "[::1]:9000"}})
	require.NoError(t, err)
	anyHost, err := console.New(console.Options{Outbox: ob})
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		c    *console.Console
		host string
		want bool
	}{
		{"ListedHostAndPort", withPort, "ops.example.com:8443", true},
		{"ListedHostInCapitals", withPort, "OPS.Example.com:8443", true},
		{"ListedIPv6AddressAndPort", withPort, "[::1]:9000", true},
		{"ListedHostOnAnotherPort", withPort, "ops.example.com:9000", false},
		{"ListedHostWithoutAPort", withPort, "ops.example.com", false},
		{"ListedIPv6AddressOnAnotherPort", withPort, "[::1]:8443", false},
		{"NoHost", withPort, "", false},
		{"NoAllowedHostsAdmitsAnyHost", anyHost, "attacker.example", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, tc.c.AllowsHost(tc.host))
			req := httptest.NewRequest(http.MethodGet, "/static/console.css", nil)
			req.Host = tc.host
			rec := httptest.NewRecorder()
			tc.c.ServeHTTP(rec, req)
			if tc.want {
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			} else {
				require.Equal(t, http.StatusMisdirectedRequest, rec.Code, rec.Body.String())
			}
		})
	}
}

// TestCookiesAreSecureOverTLSOrWhenAsked reads the CSRF cookie a page
// sets, over plain HTTP and over a real TLS listener.
func TestCookiesAreSecureOverTLSOrWhenAsked(t *testing.T) {
	t.Parallel()
	ob := consoletest.Open(t, "sqlite").Driver.Outbox()
	for _, tc := range []struct {
		name          string
		tls, secure   bool
		wantSecureSet bool
	}{
		{"PlainHTTP", false, false, false},
		{"PlainHTTPBehindATLSProxy", false, true, true},
		{"TLS", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := console.New(console.Options{Outbox: ob, SecureCookies: tc.secure})
			require.NoError(t, err)
			srv := httptest.NewUnstartedServer(c)
			if tc.tls {
				srv.StartTLS()
			} else {
				srv.Start()
			}
			t.Cleanup(srv.Close)
			res, err := srv.Client().Get(srv.URL + "/dead")
			require.NoError(t, err)
			require.NoError(t, res.Body.Close())
			require.Equal(t, http.StatusOK, res.StatusCode)
			var found bool
			for _, ck := range res.Cookies() {
				if ck.Name == "wharf_console_csrf" {
					found = true
					require.Equal(t, tc.wantSecureSet, ck.Secure, "Secure attribute")
					require.True(t, ck.HttpOnly)
				}
			}
			require.True(t, found, "the page set its CSRF cookie")
		})
	}
}
