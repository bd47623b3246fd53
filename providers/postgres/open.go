package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/dialect"
)

// EnvVar is the environment variable NewProvider reads.
const EnvVar = "POSTGRES_DB_URL"

// NewProvider returns a core.Provider that opens POSTGRES_DB_URL (or
// opts.URL) on Start and installs the driver as a port (see
// wharf.Provider). A missing or malformed URL, or a server that cannot be
// reached, fails Start with an error naming the variable and the host,
// never the password.
func NewProvider(opts wharf.ProviderOptions) *wharf.Provider {
	if opts.EnvVar == "" {
		opts.EnvVar = EnvVar
	}
	opts.Dialect = "postgres"
	return wharf.NewProvider(opts)
}

// Open opens a pool on url (a postgres:// or postgresql:// URL; see
// ParseURL), pings the server and returns a driver that owns the pool. A
// URL of another dialect is an error matching ports.ErrInvalidArgument;
// errors name the host and never the password.
func Open(ctx context.Context, url string, opts wharf.Options) (*wharf.Driver, error) {
	if _, err := ParseURL(url); err != nil {
		return nil, err
	}
	return wharf.Open(ctx, url, opts)
}

// openDB opens a pgx (database/sql) pool with bun's PostgreSQL dialect and
// pool's settings, and pings the server.
func openDB(ctx context.Context, rawURL string, oc dialect.OpenConfig) (*bun.DB, error) {
	cfg, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	sqldb := stdlib.OpenDB(*cfg)
	dialect.ApplyPool(sqldb, oc.Pool)
	if err := sqldb.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		return nil, &redactedError{
			msg: fmt.Sprintf("postgres: cannot connect to %s: %s", describeURL(rawURL), err.Error()),
			err: TranslateError(err), secrets: secretsOf(rawURL),
		}
	}
	return bun.NewDB(sqldb, pgdialect.New()), nil
}

// ParseURL validates a POSTGRES_DB_URL value and returns the pgx
// configuration Open uses. Unless the URL sets default_query_exec_mode, the
// configuration uses pgx's simple protocol: bun renders every argument into
// the SQL text, so a statement cache would prepare each distinct text once
// and never reuse it (two round trips per query instead of one). Errors match
// ports.ErrInvalidArgument, name the host and never contain the password.
func ParseURL(rawURL string) (*pgx.ConnConfig, error) {
	if rawURL == "" {
		return nil, check.Invalidf("postgres: empty URL; use postgres://user:password@host:5432/dbname?sslmode=disable")
	}
	lower := strings.ToLower(rawURL)
	if !strings.HasPrefix(lower, "postgres://") && !strings.HasPrefix(lower, "postgresql://") {
		return nil, check.Invalidf("postgres: malformed URL %s: it must start with postgres:// or postgresql:// (e.g. postgres://user:password@localhost:5432/app)", describeURL(rawURL))
	}
	secrets := secretsOf(rawURL)
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the whole URL, password included
		}
		return nil, check.Invalidf("postgres: malformed URL %s: %s", describeURL(rawURL), redact(err.Error(), secrets))
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return nil, check.Invalidf("postgres: malformed URL %s: no host (e.g. postgres://user:password@localhost:5432/app)", describeURL(rawURL))
	}
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, "`: "); i >= 0 {
			msg = msg[i+3:] // drop pgx's copy of the URL
		}
		return nil, check.Invalidf("postgres: malformed URL %s: %s", describeURL(rawURL), redact(msg, secrets))
	}
	if !u.Query().Has("default_query_exec_mode") {
		cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	}
	return cfg, nil
}

// describeURL renders rawURL for messages: scheme, user, host, port and
// database, without the password or the query. It works on malformed URLs
// too, and repeats nothing of a value without "://".
func describeURL(rawURL string) string {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		// Not URL-shaped (perhaps a keyword/value DSN with a password in
		// it): nothing of it is safe to repeat.
		return "(not a URL)"
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	authority, path, _ := strings.Cut(rest, "/")
	user := ""
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		user, _, _ = strings.Cut(authority[:i], ":")
		authority = authority[i+1:]
		user += "@"
	}
	host := authority
	if host == "" {
		host = "(no host)"
	}
	out := host
	if path != "" {
		out += "/" + path
	}
	return fmt.Sprintf("%q", scheme+"://"+user+out)
}

// secretsOf returns the passwords a URL carries (in its user info or as a
// password query parameter), for redaction.
func secretsOf(rawURL string) []string {
	var out []string
	_, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		rest = rawURL
	}
	authority := rest
	if i := strings.IndexAny(authority, "/?#"); i >= 0 {
		authority = authority[:i]
	}
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		if _, pw, ok := strings.Cut(authority[:i], ":"); ok && pw != "" {
			out = append(out, pw)
			if dec, err := url.PathUnescape(pw); err == nil && dec != pw {
				out = append(out, dec)
			}
		}
	}
	if _, q, ok := strings.Cut(rest, "?"); ok {
		if vals, err := url.ParseQuery(q); err == nil {
			for _, pw := range vals["password"] {
				if pw != "" {
					out = append(out, pw)
				}
			}
		}
	}
	return out
}

// redact replaces every secret in s.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "xxxxx")
		}
	}
	return s
}

// redactedError carries a message scrubbed of secrets while keeping the
// cause reachable for errors.Is and errors.As.
type redactedError struct {
	msg     string
	err     error
	secrets []string
}

func (e *redactedError) Error() string { return redact(e.msg, e.secrets) }
func (e *redactedError) Unwrap() error { return e.err }
