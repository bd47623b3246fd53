// Package console is wharf's web console: an http.Handler that shows an
// outbox (counts, throughput, messages, dead letters) and an idempotency
// store, and requeues and purges dead letters, for operators who would
// otherwise write SQL.
//
// `wharf ui` serves it on its own; an application mounts it under a path
// of its own, behind its own authentication:
//
//	c, err := console.New(console.Options{Outbox: drv.Outbox(), Idempotency: drv.Idempotency()})
//	mux.Handle("/admin/wharf/", requireAdmin(http.StripPrefix("/admin/wharf", c)))
//
// Pages are rendered on the server with html/template (every value is
// escaped) and served with a Content-Security-Policy that allows only the
// console's own script and style. Every state-changing request needs the
// CSRF token of a page the console rendered and must come from the same
// origin; ReadOnly hides and refuses every action. Counts scan the tables,
// so they are cached for every viewer (Options.StatsInterval); listings are
// keyset-paged.
//
// A console that needs no authentication, such as one listening on
// 127.0.0.1, must also check the Host header: set Options.AllowedHosts
// (LoopbackHosts on a loopback address), and requests for any other Host
// are refused with 421 Misdirected Request. Otherwise a page of another
// site whose name its owner re-resolves to 127.0.0.1 (DNS rebinding) is of
// the console's origin: it reads the pages, CSRF token included, and
// submits requeues and purges. `wharf ui` sets it on a loopback address.
// Behind a proxy that terminates TLS, set Options.SecureCookies so that
// the console's cookie is Secure.
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/logging"
	"github.com/wharf-go/wharf/ports"
)

// Defaults of Options.
const (
	// DefaultStatsInterval is the least time between two counts of a table.
	DefaultStatsInterval = 5 * time.Second
	// DefaultPageSize is the rows of one page of a listing.
	DefaultPageSize = 50
	// MaxPageSize bounds Options.PageSize and a listing's limit parameter.
	MaxPageSize = 1000
)

// Options configure a Console. The zero value of every field but Outbox
// means its default.
type Options struct {
	// Outbox is the outbox shown: a driver's Outbox(). Required. Purging
	// one or selected dead letters needs ports.DeadLetterDeleter (wharf's
	// outboxes have it); without it only purges of all matches are offered.
	Outbox ports.OutboxAdmin
	// Idempotency is the idempotency store shown: a driver's
	// Idempotency(). nil hides its page.
	Idempotency ports.IdempotencyAdmin
	// Title names what is shown in every page's header and title, such as
	// "orders (postgres)". Never put a URL with its password here. Default
	// "wharf".
	Title string
	// ReadOnly hides every action and refuses every state-changing request
	// with 403.
	ReadOnly bool
	// Meter, when set, feeds the overview's chart with the messages this
	// process's relays delivered and failed per minute. Without one, the
	// chart shows what counting the table can tell: the dead letters added
	// per minute and the pending backlog, sampled while the console is open.
	Meter *Meter
	// StatsInterval is the least time between two counts of a table (each
	// scans it), shared by every viewer; the console also waits ten times
	// as long as the last count took. Default DefaultStatsInterval.
	StatsInterval time.Duration
	// PageSize is the rows of one page of a listing, at most MaxPageSize.
	// Default DefaultPageSize.
	PageSize int
	// PathPrefix is the path under which browsers reach the console, for a
	// proxy that strips it before the request reaches the handler. Empty
	// means the prefix http.StripPrefix removed (the console compares the
	// request's URI with its path).
	PathPrefix string
	// CSRFKey signs the CSRF tokens (at least 32 bytes). Give every replica
	// behind one load balancer the same key; nil means a random key, which
	// makes the forms of a console fail on another replica.
	CSRFKey []byte
	// Now is the clock of the pages (what is ready, how old it is); give
	// the console the driver's. nil means time.Now.
	Now func() time.Time
	// Logger receives the errors of pages and actions (never payloads or
	// parameter values); nil means slog.Default at warn level and above.
	Logger *slog.Logger
	// AllowedHosts, when not empty, are the only Host headers the console
	// answers; any other is refused with 421 Misdirected Request before
	// anything is read or changed. An entry is a host name or IP address,
	// admitted with any port ("localhost", "::1", "ops.example.com"), or a
	// host:port, admitted with that port only ("ops.example.com:8443").
	// Names match without regard to case. Set it whenever the console is
	// reachable without authentication, such as on a loopback address
	// (LoopbackHosts): otherwise a page of another site, whose name its
	// owner re-resolves to 127.0.0.1 (DNS rebinding), is of the console's
	// origin, reads its pages and submits its forms. Empty admits every
	// Host: right for a console mounted behind an application's own
	// authentication.
	AllowedHosts []string
	// SecureCookies marks the console's cookie Secure on every request,
	// for a console behind a proxy that terminates TLS (requests reach it
	// over plain HTTP). Requests that arrive over TLS get a Secure cookie
	// either way. Browsers send a Secure cookie over HTTPS only, so leave
	// it off for a console served over plain HTTP.
	SecureCookies bool
}

// LoopbackHosts returns the host names of this machine's loopback
// addresses, for Options.AllowedHosts of a console that listens on one:
// localhost, 127.0.0.1 and ::1, each with any port.
func LoopbackHosts() []string { return []string{"localhost", "127.0.0.1", "::1"} }

func (o *Options) setDefaults() {
	if o.Title == "" {
		o.Title = "wharf"
	}
	if o.StatsInterval == 0 {
		o.StatsInterval = DefaultStatsInterval
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Logger = logging.OrDefault(o.Logger)
}

func (o *Options) validate() error {
	switch {
	case o.Outbox == nil:
		return check.Invalidf("Outbox is nil; pass a driver's Outbox()")
	case o.StatsInterval < 0:
		return check.Invalidf("StatsInterval %v is negative; use 0 for the default", o.StatsInterval)
	case o.PageSize < 0 || o.PageSize > MaxPageSize:
		return check.Invalidf("PageSize %d must be within 0..%d (0 means %d)", o.PageSize, MaxPageSize, DefaultPageSize)
	case o.CSRFKey != nil && len(o.CSRFKey) < 32:
		return check.Invalidf("CSRFKey has %d bytes; use at least 32 random bytes (or nil for a random key)", len(o.CSRFKey))
	case o.PathPrefix != "" && (!strings.HasPrefix(o.PathPrefix, "/") || strings.HasSuffix(o.PathPrefix, "/")):
		return check.Invalidf("PathPrefix %q must start with / and not end with one, such as /admin/wharf", o.PathPrefix)
	}
	for i, h := range o.AllowedHosts {
		if err := validHost(h); err != nil {
			return check.Invalidf("AllowedHosts[%d] %q %s; use a host name or IP address (any port), or host:port, such as localhost or ops.example.com:8443", i, h, err)
		}
	}
	return nil
}

// Console is the web console, an http.Handler. Create it with New. It is
// safe for concurrent use.
type Console struct {
	opts    Options
	deleter ports.DeadLetterDeleter // nil when the outbox cannot delete by ID
	outbox  *counts[ports.OutboxStats]
	idem    *counts[ports.IdempotencyStats]
	samples samples
	csrfKey []byte
	origin  *http.CrossOriginProtection
	pages   map[string]*template.Template
	static  http.Handler
	version string // of the static files, for cache busting
	mux     *http.ServeMux
	log     *slog.Logger
	hosts   hostSet // nil admits every Host
}

//go:embed templates/*.html static/*
var files embed.FS

// New returns a console on opts. Invalid options are an error matching
// ports.ErrInvalidArgument.
func New(opts Options) (*Console, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	c := &Console{opts: opts, log: opts.Logger, origin: http.NewCrossOriginProtection()}
	c.deleter, _ = opts.Outbox.(ports.DeadLetterDeleter)
	c.hosts = newHostSet(opts.AllowedHosts)
	c.csrfKey = opts.CSRFKey
	if c.csrfKey == nil {
		c.csrfKey = make([]byte, 32)
		_, _ = rand.Read(c.csrfKey) // never fails (crypto/rand)
	}
	c.outbox = &counts[ports.OutboxStats]{fetch: opts.Outbox.Stats, every: opts.StatsInterval, now: opts.Now, sampled: c.samples.add}
	if opts.Idempotency != nil {
		c.idem = &counts[ports.IdempotencyStats]{fetch: opts.Idempotency.Stats, every: opts.StatsInterval, now: opts.Now}
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	static, _ := fs.Sub(files, "static")
	c.static = http.FileServerFS(static)
	c.version = staticVersion()
	c.routes()
	return c, nil
}

// staticVersion hashes the static files, so that their URLs change with
// them and browsers may cache them for long.
func staticVersion() string {
	h := sha256.New()
	_ = fs.WalkDir(files, "static", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := files.ReadFile(path)
			h.Write([]byte(path))
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /{$}", c.overview)
	m.HandleFunc("GET /live", c.live)
	m.HandleFunc("GET /messages", c.messages)
	m.HandleFunc("GET /messages/{id}", c.message)
	m.HandleFunc("GET /dead", c.dead)
	m.HandleFunc("POST /dead/requeue", c.action(c.requeue))
	m.HandleFunc("POST /dead/purge", c.action(c.purgeDead))
	m.HandleFunc("GET /idempotency", c.idempotency)
	m.HandleFunc("POST /idempotency/purge", c.action(c.purgeIdempotency))
	m.HandleFunc("GET /static/", c.serveStatic)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, fmt.Errorf("no page at %s", r.URL.Path))
	})
	c.mux = m
}

// ServeHTTP serves the console's pages, actions and static files.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Only the console's own script and style; nothing may frame it.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "+
		"form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	if !c.AllowsHost(r.Host) {
		c.misdirected(w, r)
		return
	}
	base := c.base(r)
	if r.URL.Path == "" {
		http.Redirect(w, r, base+"/", http.StatusMovedPermanently)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), baseKey{}, base))
	c.mux.ServeHTTP(w, r)
}

type baseKey struct{}

// base returns the path prefix under which the browser reached the
// console: Options.PathPrefix, else what http.StripPrefix removed.
func (c *Console) base(r *http.Request) string {
	if c.opts.PathPrefix != "" {
		return c.opts.PathPrefix
	}
	if b, ok := r.Context().Value(baseKey{}).(string); ok {
		return b
	}
	full, _, _ := strings.Cut(r.RequestURI, "?")
	if i := strings.Index(full, "://"); i >= 0 { // absolute-form request URI
		if j := strings.IndexByte(full[i+3:], '/'); j >= 0 {
			full = full[i+3+j:]
		} else {
			full = ""
		}
	}
	if p := r.URL.EscapedPath(); strings.HasSuffix(full, p) {
		full = strings.TrimSuffix(full, p)
	} else if p := r.URL.Path; strings.HasSuffix(full, p) {
		full = strings.TrimSuffix(full, p)
	} else {
		return ""
	}
	return strings.TrimSuffix(full, "/")
}

func (c *Console) serveStatic(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("v") == c.version {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	http.StripPrefix("/static", c.static).ServeHTTP(w, r)
}

// queryTimeout bounds the queries of one page.
const queryTimeout = 30 * time.Second
