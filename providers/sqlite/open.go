package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/dialect"
)

// EnvVar is the environment variable NewProvider reads.
const EnvVar = "SQLITE_DB_URL"

// DefaultBusyTimeoutMS is the busy_timeout Open sets unless the URL sets one.
const DefaultBusyTimeoutMS = 10000

// NewProvider returns a core.Provider that opens SQLITE_DB_URL (or
// opts.URL) on Start and installs the driver as a port (see
// wharf.Provider). A missing or malformed URL fails Start with an error
// naming the variable.
func NewProvider(opts wharf.ProviderOptions) *wharf.Provider {
	if opts.EnvVar == "" {
		opts.EnvVar = EnvVar
	}
	opts.Dialect = "sqlite"
	return wharf.NewProvider(opts)
}

// Open opens the SQLite database of url ("file:PATH[?query]",
// "sqlite:PATH" or ":memory:"; see DSN) and returns a driver that owns it.
// A URL of another dialect is an error matching ports.ErrInvalidArgument.
func Open(ctx context.Context, url string, opts wharf.Options) (*wharf.Driver, error) {
	if _, _, err := DSN(url); err != nil {
		return nil, err
	}
	return wharf.Open(ctx, url, opts)
}

// openDB opens and pings the database of rawURL with pool's settings. An
// in-memory database keeps one connection (each connection would otherwise
// see its own empty database).
func openDB(ctx context.Context, rawURL string, cfg dialect.OpenConfig) (*bun.DB, error) {
	dsn, memory, err := DSN(rawURL)
	if err != nil {
		return nil, err
	}
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	pool := cfg.Pool
	if memory {
		pool.MaxOpenConns, pool.MaxIdleConns, pool.ConnMaxLifetime, pool.ConnMaxIdleTime = 1, 1, 0, 0
	}
	dialect.ApplyPool(sqldb, pool)
	if err := sqldb.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		return nil, &openError{msg: fmt.Sprintf("sqlite: open %s: %s", redactPath(rawURL), redactUserInfo(err.Error(), rawURL)), err: TranslateError(err)}
	}
	return bun.NewDB(sqldb, sqlitedialect.New()), nil
}

// openError is a failure to open whose text is scrubbed of the URL's user
// info, with the cause still reachable for errors.Is and errors.As.
type openError struct {
	msg string
	err error
}

func (e *openError) Error() string { return e.msg }
func (e *openError) Unwrap() error { return e.err }

// redactUserInfo removes from s the user info of rawURL (the text before
// its last "@"), which SQLite's own errors may quote.
func redactUserInfo(s, rawURL string) string {
	at := strings.LastIndexByte(rawURL, '@')
	if at < 0 {
		return s
	}
	info := rawURL[:at]
	if i := strings.LastIndex(info, "//"); i >= 0 {
		info = info[i+2:]
	} else if i := strings.IndexByte(info, ':'); i >= 0 {
		info = info[i+1:]
	}
	if info == "" {
		return s
	}
	return strings.ReplaceAll(s, info, "(user info not shown)")
}

// redactPath renders a URL for messages: without its query, and without
// a user and password if it has any (a URL meant for another database).
func redactPath(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		u = u[:i]
	}
	if at := strings.LastIndexByte(u, '@'); at >= 0 {
		start := strings.Index(u, "://")
		if start < 0 || start > at {
			start = strings.IndexByte(u, ':')
		} else {
			start += 2
		}
		u = u[:start+1] + "(user info not shown)@" + u[at+1:]
	}
	return u
}

// DSN turns a SQLITE_DB_URL value into a modernc.org/sqlite DSN with the
// defaults added, and reports whether it names an in-memory database. The
// URL is "file:PATH[?query]", "sqlite:PATH[?query]" or ":memory:". Unless
// the URL sets them, DSN adds _pragma=busy_timeout(10000),
// _pragma=journal_mode(WAL) (file databases), _pragma=foreign_keys(1) and
// _txlock=immediate.
func DSN(rawURL string) (dsn string, memory bool, err error) {
	switch {
	case rawURL == "":
		return "", false, check.Invalidf("sqlite: empty URL; use file:PATH (e.g. file:app.db) or :memory:")
	case rawURL == ":memory:":
		rawURL = "file::memory:"
	case strings.HasPrefix(rawURL, "sqlite:"):
		rawURL = "file:" + strings.TrimPrefix(rawURL, "sqlite:")
	case strings.HasPrefix(rawURL, "sqlite3:"):
		rawURL = "file:" + strings.TrimPrefix(rawURL, "sqlite3:")
	case !strings.HasPrefix(rawURL, "file:"):
		// A URL meant for another database may carry a password: only its
		// scheme is shown.
		shown := fmt.Sprintf("%q", redactPath(rawURL))
		if scheme, _, ok := strings.Cut(rawURL, "://"); ok {
			shown = fmt.Sprintf("starting with %q", scheme+"://")
		} else if strings.Contains(rawURL, "@") {
			shown = "(not shown: it may contain a password)"
		}
		return "", false, check.Invalidf("sqlite: malformed URL %s: it must start with \"file:\" or \"sqlite:\" (e.g. file:app.db) or be \":memory:\"", shown)
	}
	path, rawQuery, _ := strings.Cut(strings.TrimPrefix(rawURL, "file:"), "?")
	if path == "" {
		return "", false, check.Invalidf("sqlite: malformed URL %q: no file path after \"file:\"", rawURL)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", false, check.Invalidf("sqlite: malformed URL query in %q: %v", redactPath(rawURL), err)
	}
	memory = path == ":memory:" || q.Get("mode") == "memory"
	has := func(pragma string) bool {
		for _, v := range q["_pragma"] {
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), pragma) {
				return true
			}
		}
		return false
	}
	if !has("busy_timeout") {
		q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", DefaultBusyTimeoutMS))
	}
	if !memory && !has("journal_mode") {
		q.Add("_pragma", "journal_mode(WAL)")
	}
	if !has("foreign_keys") {
		q.Add("_pragma", "foreign_keys(1)")
	}
	if q.Get("_txlock") == "" {
		q.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode(), memory, nil
}
