package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/providers/internal/dbprovider"
)

// EnvVar is the environment variable NewProvider reads.
const EnvVar = "SQLITE_DB_URL"

// DefaultBusyTimeoutMS is the busy_timeout Open sets unless the URL sets one.
const DefaultBusyTimeoutMS = 10000

// Options configures NewProvider. The zero value reads SQLITE_DB_URL and
// installs the database as port "db".
type Options struct {
	// URL overrides SQLITE_DB_URL: "file:app.db", "file:/abs/app.db?_pragma=...",
	// or ":memory:".
	URL string
	// PortName is the port the *bun.DB is installed under; default "db".
	PortName string
	// Logger; nil discards.
	Logger *slog.Logger
}

// Provider opens the database on Start and closes it on Stop.
type Provider = dbprovider.Provider

// NewProvider returns a core.Provider that opens SQLITE_DB_URL (or
// Options.URL), pings it and installs the *bun.DB as Options.PortName. A
// missing or malformed URL fails Start with an error naming the variable.
func NewProvider(opts Options) *Provider {
	return dbprovider.New(dbprovider.Config{
		Dialect: "sqlite", EnvVar: EnvVar, URL: opts.URL, PortName: opts.PortName,
		Example: "file:app.db", Open: Open, Logger: opts.Logger,
	})
}

// Open opens and pings a SQLite database. rawURL is "file:PATH[?query]" or
// ":memory:". Unless the URL sets them, Open adds
// _pragma=busy_timeout(10000), _pragma=journal_mode(WAL) (file databases),
// _pragma=foreign_keys(1) and _txlock=immediate. An in-memory database is
// limited to one connection (each connection would otherwise see its own
// empty database).
func Open(ctx context.Context, rawURL string) (*bun.DB, error) {
	dsn, memory, err := DSN(rawURL)
	if err != nil {
		return nil, err
	}
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if memory {
		sqldb.SetMaxOpenConns(1)
	}
	if err := sqldb.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", redactPath(rawURL), TranslateError(err))
	}
	return bun.NewDB(sqldb, sqlitedialect.New()), nil
}

func redactPath(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// DSN turns a SQLITE_DB_URL value into a modernc.org/sqlite DSN with the
// defaults added, and reports whether it names an in-memory database.
func DSN(rawURL string) (dsn string, memory bool, err error) {
	switch {
	case rawURL == "":
		return "", false, core.Invalidf("sqlite: empty URL; use file:PATH (e.g. file:app.db) or :memory:")
	case rawURL == ":memory:":
		rawURL = "file::memory:"
	case !strings.HasPrefix(rawURL, "file:"):
		return "", false, core.Invalidf("sqlite: malformed URL %q: it must start with \"file:\" (e.g. file:app.db) or be \":memory:\"", redactPath(rawURL))
	}
	path, rawQuery, _ := strings.Cut(strings.TrimPrefix(rawURL, "file:"), "?")
	if path == "" {
		return "", false, core.Invalidf("sqlite: malformed URL %q: no file path after \"file:\"", rawURL)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return "", false, core.Invalidf("sqlite: malformed URL query in %q: %v", redactPath(rawURL), err)
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
