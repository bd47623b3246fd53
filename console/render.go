package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wharf-go/wharf/ports"
)

// pageNames are the templates, each rendered inside layout.html (live.html
// is also rendered alone, as the overview's live fragment).
var pageNames = []string{"overview", "messages", "message", "idempotency", "confirm", "error"}

func parsePages() (map[string]*template.Template, error) {
	out := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files,
			"templates/layout.html", "templates/live.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		out[name] = t
	}
	return out, nil
}

// page is what every template gets.
type page struct {
	Base     string
	Title    string // of the console (Options.Title)
	Heading  string // of the page
	Nav      string // the current section
	ReadOnly bool
	CSRF     string
	Static   string // version of the static files
	Flash    string
	Now      time.Time
	Refresh  int  // seconds between live refreshes
	HasIdem  bool // an idempotency store is shown
	Data     any
}

func (c *Console) page(w http.ResponseWriter, r *http.Request, nav, heading string, data any) page {
	p := page{
		Base: c.base(r), Title: c.opts.Title, Heading: heading, Nav: nav, ReadOnly: c.opts.ReadOnly,
		Static: c.version, Now: c.opts.Now(), Refresh: max(1, int(c.opts.StatsInterval/time.Second)), Data: data,
		HasIdem: c.opts.Idempotency != nil,
	}
	if !c.opts.ReadOnly {
		p.CSRF = c.csrfToken(w, r)
	}
	p.Flash = flash(r.URL.Query())
	return p
}

// render writes the page template name with status.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout.html", p); err != nil {
		c.log.ErrorContext(r.Context(), "console: render", slog.String("page", name), slog.Any("error", err))
		http.Error(w, "the console could not render this page; see the server's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// fail renders an error page: bad input (400) says what was wrong.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	if errors.Is(err, ports.ErrInvalidArgument) {
		status = http.StatusBadRequest
	}
	if status >= 500 {
		c.log.ErrorContext(r.Context(), "console: request failed", slog.String("path", r.URL.Path), slog.Any("error", err))
	}
	p := c.page(w, r, "", http.StatusText(status), struct {
		Status  int
		Message string
	}{status, err.Error()})
	c.render(w, r, status, "error", p)
}

// flash is the message of a finished action, made from the redirect's
// parameters (never text taken from the URL, so that a link cannot make
// the console say something).
func flash(q url.Values) string {
	n, _ := strconv.ParseInt(q.Get("n"), 10, 64)
	of, err := strconv.ParseInt(q.Get("of"), 10, 64)
	skipped := ""
	if err == nil && of > n {
		skipped = fmt.Sprintf(" (%s of %s: the others were no longer dead letters)", num(n), num(of))
	}
	switch q.Get("done") {
	case "requeued":
		return fmt.Sprintf("Requeued %s dead letter(s)%s.", num(n), skipped)
	case "purged":
		return fmt.Sprintf("Purged %s dead letter(s)%s.", num(n), skipped)
	case "idempotency-purged":
		return fmt.Sprintf("Purged %s expired idempotency record(s).", num(n))
	}
	return ""
}

var funcs = template.FuncMap{
	"url":     link,
	"msg":     messageLink,
	"num":     num,
	"ago":     ago,
	"ts":      ts,
	"dur":     dur,
	"state":   state,
	"pretty":  pretty,
	"trunc":   trunc,
	"len64":   func(s []string) int64 { return int64(len(s)) },
	"percent": func(a, b int64) int64 { return a * 100 / max(b, 1) },
}

// link builds base+path with the non-empty query pairs of kv.
func link(base, path string, kv ...string) template.URL {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	u := base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return template.URL(u) // only paths of the console: no scheme comes from data
}

// messageLink is the URL of one message's page.
func messageLink(base, id string) template.URL {
	return template.URL(base + "/messages/" + url.PathEscape(id))
}

func num(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// ago says how long before now t is ("3m12s ago", "in 5s").
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + dur(-d)
	}
	return dur(d) + " ago"
}

// dur rounds d for a person.
func dur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < 48*time.Hour:
		return d.Round(time.Second).String()
	}
	return fmt.Sprintf("%dd%dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
}

// state is a message's state as the counts name it.
func state(r ports.OutboxRecord, now time.Time) string {
	switch {
	case r.Status == ports.StatusDead:
		return "dead"
	case r.LockedUntil.After(now):
		return "leased"
	case r.AvailableAt.After(now):
		return "scheduled"
	}
	return "ready"
}

// pretty indents JSON; anything else is returned as it is.
func pretty(b []byte) string {
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return string(b)
	}
	return out.String()
}

func trunc(s string, n int) string {
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
