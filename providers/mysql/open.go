package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/mysqldialect"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/providers/internal/dbprovider"
)

// EnvVar is the environment variable NewProvider reads.
const EnvVar = "MYSQL_DB_URL"

// Defaults that Open applies unless the URL (timeouts) or Options (pool)
// set them.
const (
	// DefaultTimeout bounds establishing a connection (the driver's
	// "timeout" parameter).
	DefaultTimeout = 10 * time.Second
	// DefaultReadTimeout bounds waiting for one server reply ("readTimeout").
	// It is above InnoDB's default lock wait timeout (50 s) so that a
	// statement waiting for a lock fails with the classified error 1205
	// rather than a broken connection.
	DefaultReadTimeout = 60 * time.Second
	// DefaultWriteTimeout bounds sending one request ("writeTimeout").
	DefaultWriteTimeout = 60 * time.Second
	// DefaultMaxOpenConns caps the pool.
	DefaultMaxOpenConns = 25
	// DefaultConnMaxLifetime recycles connections before servers, proxies or
	// firewalls drop them (the driver recommends less than 5 minutes).
	DefaultConnMaxLifetime = 3 * time.Minute
)

// Options configures NewProvider. The zero value reads MYSQL_DB_URL,
// installs the database as port "db" and uses the default pool settings.
type Options struct {
	// URL overrides MYSQL_DB_URL:
	// "mysql://user:password@host:3306/database?param=value".
	URL string
	// PortName is the port the *bun.DB is installed under; default "db".
	PortName string
	// Logger; nil discards.
	Logger *slog.Logger

	// MaxOpenConns caps open connections; 0 means DefaultMaxOpenConns,
	// negative means no limit.
	MaxOpenConns int
	// MaxIdleConns caps idle connections; 0 means MaxOpenConns (no churn
	// under steady load), negative means none are kept.
	MaxIdleConns int
	// ConnMaxLifetime recycles older connections; 0 means
	// DefaultConnMaxLifetime, negative means never.
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes connections idle for longer; 0 or negative
	// means never (ConnMaxLifetime still applies).
	ConnMaxIdleTime time.Duration
}

// applyPool sets the pool limits of db from o (zero values mean defaults).
func (o Options) applyPool(db *sql.DB) {
	maxOpen := o.MaxOpenConns
	switch {
	case maxOpen == 0:
		maxOpen = DefaultMaxOpenConns
	case maxOpen < 0:
		maxOpen = 0 // database/sql: no limit
	}
	maxIdle := o.MaxIdleConns
	switch {
	case maxIdle == 0:
		maxIdle = maxOpen
		if maxIdle == 0 {
			maxIdle = DefaultMaxOpenConns
		}
	case maxIdle < 0:
		maxIdle = 0
	}
	lifetime := o.ConnMaxLifetime
	if lifetime == 0 {
		lifetime = DefaultConnMaxLifetime
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxIdle)
	db.SetConnMaxLifetime(lifetime) // <= 0: never
	db.SetConnMaxIdleTime(o.ConnMaxIdleTime)
}

// Provider opens the database on Start and closes it on Stop.
type Provider = dbprovider.Provider

// NewProvider returns a core.Provider that opens MYSQL_DB_URL (or
// Options.URL) with Open, applies the pool settings of opts and installs the
// *bun.DB as Options.PortName. A missing or malformed URL fails Start with
// an error naming the variable; the password never appears in errors.
func NewProvider(opts Options) *Provider {
	return dbprovider.New(dbprovider.Config{
		Dialect: "mysql", EnvVar: EnvVar, URL: opts.URL, PortName: opts.PortName,
		Example: "mysql://user:password@localhost:3306/app",
		Open: func(ctx context.Context, rawURL string) (*bun.DB, error) {
			db, err := Open(ctx, rawURL)
			if err != nil {
				return nil, err
			}
			opts.applyPool(db.DB)
			return db, nil
		},
		Logger: opts.Logger,
	})
}

// Open opens and pings a MySQL 8.0+ or MariaDB 10.6+ database. rawURL is
// "mysql://user:password@host[:port]/database[?params]" (see DSN), and the
// pool gets the default limits (DefaultMaxOpenConns idle and open,
// DefaultConnMaxLifetime); change them on the returned db. An older server
// is refused with an error saying which versions are supported.
func Open(ctx context.Context, rawURL string) (*bun.DB, error) {
	cfg, redacted, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	connector, err := gomysql.NewConnector(cfg)
	if err != nil {
		return nil, core.Invalidf("mysql: URL %s: %v", redacted, err)
	}
	sqldb := sql.OpenDB(connector)
	Options{}.applyPool(sqldb)
	if err := sqldb.PingContext(ctx); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("mysql: open %s: %w", redacted, TranslateError(err))
	}
	var version string
	if err := sqldb.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("mysql: open %s: read server version: %w", redacted, TranslateError(err))
	}
	if err := checkServerVersion(version); err != nil {
		_ = sqldb.Close()
		return nil, fmt.Errorf("mysql: open %s: %w", redacted, err)
	}
	return bun.NewDB(sqldb, mysqldialect.New()), nil
}

// checkServerVersion refuses servers without SKIP LOCKED: MySQL before 8.0
// and MariaDB before 10.6.
func checkServerVersion(version string) error {
	isMariaDB := strings.Contains(strings.ToLower(version), "mariadb")
	v := version
	if isMariaDB {
		// Some MariaDB builds report "5.5.5-10.11.6-MariaDB".
		v = strings.TrimPrefix(v, "5.5.5-")
	}
	major, minor, ok := majorMinor(v)
	if !ok {
		return fmt.Errorf("unrecognised server version %q; wharf supports MySQL 8.0+ and MariaDB 10.6+", version)
	}
	switch {
	case isMariaDB && (major < 10 || major == 10 && minor < 6):
		return fmt.Errorf("MariaDB %d.%d is not supported: wharf needs MariaDB 10.6+ (or MySQL 8.0+) for FOR UPDATE SKIP LOCKED", major, minor)
	case !isMariaDB && major < 8:
		return fmt.Errorf("MySQL %d.%d is not supported: wharf needs MySQL 8.0+ (or MariaDB 10.6+) for FOR UPDATE SKIP LOCKED", major, minor)
	}
	return nil
}

func majorMinor(v string) (major, minor int, ok bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	major, err1 := strconv.Atoi(parts[0])
	digits := parts[1]
	for i, c := range digits {
		if c < '0' || c > '9' {
			digits = digits[:i]
			break
		}
	}
	minor, err2 := strconv.Atoi(digits)
	return major, minor, err1 == nil && err2 == nil
}

// DSN turns a MYSQL_DB_URL value into a go-sql-driver/mysql DSN.
//
// The URL is "mysql://user:password@host[:port]/database[?params]"; the port
// defaults to 3306, and "?socket=/path/to/mysqld.sock" connects through a
// Unix socket instead of host:port. Percent-encode special characters of the
// user name and password. Other parameters are the driver's (tls,
// timeout, readTimeout, writeTimeout, loc, ...) or session variables
// ("innodb_lock_wait_timeout=5"), passed on unchanged.
//
// Unless the URL sets them, DSN adds timeout=DefaultTimeout,
// readTimeout=DefaultReadTimeout and writeTimeout=DefaultWriteTimeout, and a
// sql_mode that is the server's without NO_BACKSLASH_ESCAPES (bun escapes
// backslashes in the strings it interpolates). It always sets
// clientFoundRows=true: an UPDATE then reports the rows it matched, not only
// the rows it changed, so renewing a lease to the value it already has is
// not mistaken for a lost claim. parseTime stays off (wharf stores
// timestamps as text).
//
// DSN refuses URLs that would break wharf: clientFoundRows=false,
// multiStatements=true, a character set other than utf8mb4, or a sql_mode
// with NO_BACKSLASH_ESCAPES. Errors match ports.ErrInvalidArgument and never
// contain the password.
func DSN(rawURL string) (string, error) {
	cfg, _, err := parseURL(rawURL)
	if err != nil {
		return "", err
	}
	return cfg.FormatDSN(), nil
}

// sqlModeWithoutBackslashEscapes is the session sql_mode DSN sets: the
// server's mode without NO_BACKSLASH_ESCAPES.
const sqlModeWithoutBackslashEscapes = "TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@sql_mode, ','), ',NO_BACKSLASH_ESCAPES,', ','))"

const urlShape = "mysql://user:password@host:3306/database?param=value"

// parseURL parses rawURL into a driver configuration. redacted is the URL
// without password and query, safe to show.
func parseURL(rawURL string) (cfg *gomysql.Config, redacted string, err error) {
	if strings.TrimSpace(rawURL) == "" {
		return nil, "", core.Invalidf("mysql: empty URL; use %s", urlShape)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the whole URL, password included: say what is
		// expected instead.
		return nil, "", core.Invalidf("mysql: malformed URL (not shown: it may contain a password); it must look like %s, with special characters of the user name and password percent-encoded", urlShape)
	}
	if u.Opaque != "" {
		return nil, "", core.Invalidf("mysql: malformed URL (not shown: it may contain a password); it must start with \"mysql://\" (%s)", urlShape)
	}
	safe := *u
	safe.RawQuery, safe.ForceQuery, safe.Fragment, safe.RawFragment = "", false, "", ""
	redacted = safe.Redacted()
	if u.Scheme != "mysql" {
		return nil, redacted, core.Invalidf("mysql: malformed URL %s: the scheme must be \"mysql\" (%s)", redacted, urlShape)
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, redacted, core.Invalidf("mysql: malformed URL %s: no user name (%s)", redacted, urlShape)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" || strings.Contains(dbName, "/") {
		return nil, redacted, core.Invalidf("mysql: malformed URL %s: the path must be one database name (%s)", redacted, urlShape)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, redacted, core.Invalidf("mysql: malformed query string in URL %s: %v", redacted, err)
	}
	socket := q.Get("socket")
	q.Del("socket")
	// Let the driver parse its own parameters (and collect the session
	// variables): a DSN with no credentials, so nothing secret can reach its
	// error messages.
	cfg, err = gomysql.ParseDSN("/?" + q.Encode())
	if err != nil {
		return nil, redacted, core.Invalidf("mysql: URL %s: %v", redacted, err)
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.DBName = dbName
	if socket != "" {
		cfg.Net, cfg.Addr = "unix", socket
	} else {
		host := u.Hostname()
		if host == "" {
			return nil, redacted, core.Invalidf("mysql: malformed URL %s: no host; use host[:port] or ?socket=/path/to/mysqld.sock (%s)", redacted, urlShape)
		}
		port := u.Port()
		if port == "" {
			port = "3306"
		}
		cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(host, port)
	}

	if !q.Has("timeout") {
		cfg.Timeout = DefaultTimeout
	}
	if !q.Has("readTimeout") {
		cfg.ReadTimeout = DefaultReadTimeout
	}
	if !q.Has("writeTimeout") {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if q.Has("clientFoundRows") && !cfg.ClientFoundRows {
		return nil, redacted, core.Invalidf("mysql: URL %s: clientFoundRows must be true (wharf reads matched rows to detect lost claims); remove the parameter", redacted)
	}
	cfg.ClientFoundRows = true
	if cfg.MultiStatements {
		return nil, redacted, core.Invalidf("mysql: URL %s: multiStatements=true is refused (it lets one injected string run several statements); remove the parameter", redacted)
	}
	for _, cs := range q["charset"] {
		for _, c := range strings.Split(cs, ",") {
			if !strings.EqualFold(strings.TrimSpace(c), "utf8mb4") {
				return nil, redacted, core.Invalidf("mysql: URL %s: charset %q is refused; wharf needs utf8mb4 (the default)", redacted, c)
			}
		}
	}
	if c := cfg.Collation; c != "" && !strings.HasPrefix(strings.ToLower(c), "utf8mb4_") {
		return nil, redacted, core.Invalidf("mysql: URL %s: collation %q is refused; use a utf8mb4 collation (default utf8mb4_general_ci)", redacted, c)
	}
	if mode, ok := cfg.Params["sql_mode"]; ok {
		if strings.Contains(strings.ToUpper(mode), "NO_BACKSLASH_ESCAPES") {
			return nil, redacted, core.Invalidf("mysql: URL %s: sql_mode with NO_BACKSLASH_ESCAPES is refused: bun escapes backslashes in the strings it sends", redacted)
		}
	} else {
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params["sql_mode"] = sqlModeWithoutBackslashEscapes
	}
	return cfg, redacted, nil
}
