package console_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/console"
)

// prefix is where the tests mount the console, as an application would.
const prefix = "/ops/wharf"

// server is a console mounted under prefix, and a browser-like client with
// a cookie jar that does not follow redirects.
type server struct {
	t      *testing.T
	c      *console.Console
	srv    *httptest.Server
	client *http.Client
}

func newServer(t *testing.T, opts console.Options) *server {
	t.Helper()
	c, err := console.New(opts)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle(prefix+"/", http.StripPrefix(prefix, c))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &server{t: t, c: c, srv: srv, client: client}
}

// response is a read response.
type response struct {
	status   int
	body     string
	header   http.Header
	location string
}

func (s *server) do(req *http.Request) response {
	s.t.Helper()
	res, err := s.client.Do(req)
	require.NoError(s.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(s.t, err)
	return response{status: res.StatusCode, body: string(b), header: res.Header, location: res.Header.Get("Location")}
}

// get fetches path (under prefix) and requires status.
func (s *server) get(path string, status int) response {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.srv.URL+prefix+path, nil)
	require.NoError(s.t, err)
	res := s.do(req)
	require.Equal(s.t, status, res.status, "GET %s: %s", path, res.body)
	return res
}

// post submits a form to path (under prefix) as the console's own page
// would: same origin (Sec-Fetch-Site), with the cookies of the jar.
func (s *server) post(path string, form url.Values) response {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.srv.URL+prefix+path, strings.NewReader(form.Encode()))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", s.srv.URL)
	return s.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token of a page the console rendered.
func (s *server) csrf(page response) string {
	s.t.Helper()
	m := csrfRE.FindStringSubmatch(page.body)
	require.NotNil(s.t, m, "no CSRF token in the page")
	return m[1]
}

var dataValueRE = regexp.MustCompile(`data-count="([a-z-]+)" data-value="(\d+)"`)

// counts returns the counts a page shows, by name.
func counts(t *testing.T, body string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, m := range dataValueRE.FindAllStringSubmatch(body, -1) {
		n, err := strconv.ParseInt(m[2], 10, 64)
		require.NoError(t, err)
		out[m[1]] = n
	}
	return out
}

var rowRE = regexp.MustCompile(`<tr data-id="([^"]+)"`)

// rows returns the IDs of a listing's rows, in order.
func rows(body string) []string {
	var out []string
	for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
		out = append(out, htmlUnescape(m[1]))
	}
	return out
}

var nextRE = regexp.MustCompile(`id="next-page" href="([^"]+)"`)

// next returns the path (under prefix) of a listing's next page, or "".
func next(t *testing.T, body string) string {
	t.Helper()
	m := nextRE.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	u := htmlUnescape(m[1])
	require.True(t, strings.HasPrefix(u, prefix+"/"), "links stay under the mount point: %s", u)
	return strings.TrimPrefix(u, prefix)
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`).Replace(s)
}

// regexpFind returns the first group of re in s.
func regexpFind(t *testing.T, re, s string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	require.NotNil(t, m, "no %s in the page", re)
	return m[1]
}
