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

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/dialect"
)

// EnvVar is the environment variable NewProvider reads.
const EnvVar = "MYSQL_DB_URL"

// Timeouts that Open applies unless the URL sets them.
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
)

// NewProvider returns a core.Provider that opens MYSQL_DB_URL (or
// opts.URL) on Start and installs the driver as a port (see
// wharf.Provider). A missing or malformed URL fails Start with an error
// naming the variable; the password never appears in errors.
func NewProvider(opts wharf.ProviderOptions) *wharf.Provider {
	if opts.EnvVar == "" {
		opts.EnvVar = EnvVar
	}
	opts.Dialect = "mysql"
	return wharf.NewProvider(opts)
}

// Open opens a pool on url ("mysql://user:password@host[:port]/database";
// see DSN), checks the server and returns a driver that owns the pool. A
// URL of another dialect is an error matching ports.ErrInvalidArgument; an
// older server than MySQL 8.0 or MariaDB 10.6 is refused.
func Open(ctx context.Context, url string, opts wharf.Options) (*wharf.Driver, error) {
	if _, _, err := parseURL(url); err != nil {
		return nil, err
	}
	return wharf.Open(ctx, url, opts)
}

// openDB opens and pings a MySQL 8.0+ or MariaDB 10.6+ database with
// pool's settings. An older server is refused with an error saying which
// versions are supported.
func openDB(ctx context.Context, rawURL string, oc dialect.OpenConfig) (*bun.DB, error) {
	cfg, redacted, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	cfg.Logger = driverLog{oc.Logger}
	connector, err := gomysql.NewConnector(cfg)
	if err != nil {
		return nil, check.Invalidf("mysql: URL %s: %v", redacted, err)
	}
	sqldb := sql.OpenDB(connector)
	dialect.ApplyPool(sqldb, oc.Pool)
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
		return nil, "", check.Invalidf("mysql: empty URL; use %s", urlShape)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the whole URL, password included: say what is
		// expected instead.
		return nil, "", check.Invalidf("mysql: malformed URL (not shown: it may contain a password); it must look like %s, with special characters of the user name and password percent-encoded", urlShape)
	}
	if u.Opaque != "" {
		return nil, "", check.Invalidf("mysql: malformed URL (not shown: it may contain a password); it must start with \"mysql://\" (%s)", urlShape)
	}
	safe := *u
	safe.RawQuery, safe.ForceQuery, safe.Fragment, safe.RawFragment = "", false, "", ""
	redacted = safe.Redacted()
	if u.Scheme != "mysql" && u.Scheme != "mariadb" {
		return nil, redacted, check.Invalidf("mysql: malformed URL %s: the scheme must be \"mysql\" or \"mariadb\" (%s)", redacted, urlShape)
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, redacted, check.Invalidf("mysql: malformed URL %s: no user name (%s)", redacted, urlShape)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	if dbName == "" || strings.Contains(dbName, "/") {
		return nil, redacted, check.Invalidf("mysql: malformed URL %s: the path must be one database name (%s)", redacted, urlShape)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, redacted, check.Invalidf("mysql: malformed query string in URL %s: %v", redacted, err)
	}
	socket := q.Get("socket")
	q.Del("socket")
	// Let the driver parse its own parameters (and collect the session
	// variables): a DSN with no credentials, so nothing secret can reach its
	// error messages.
	cfg, err = gomysql.ParseDSN("/?" + q.Encode())
	if err != nil {
		return nil, redacted, check.Invalidf("mysql: URL %s: %v", redacted, err)
	}
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.DBName = dbName
	if socket != "" {
		cfg.Net, cfg.Addr = "unix", socket
	} else {
		host := u.Hostname()
		if host == "" {
			return nil, redacted, check.Invalidf("mysql: malformed URL %s: no host; use host[:port] or ?socket=/path/to/mysqld.sock (%s)", redacted, urlShape)
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
		return nil, redacted, check.Invalidf("mysql: URL %s: clientFoundRows must be true (wharf reads matched rows to detect lost claims); remove the parameter", redacted)
	}
	cfg.ClientFoundRows = true
	if cfg.MultiStatements {
		return nil, redacted, check.Invalidf("mysql: URL %s: multiStatements=true is refused (it lets one injected string run several statements); remove the parameter", redacted)
	}
	for _, cs := range q["charset"] {
		for _, c := range strings.Split(cs, ",") {
			if !strings.EqualFold(strings.TrimSpace(c), "utf8mb4") {
				return nil, redacted, check.Invalidf("mysql: URL %s: charset %q is refused; wharf needs utf8mb4 (the default)", redacted, c)
			}
		}
	}
	if c := cfg.Collation; c != "" && !strings.HasPrefix(strings.ToLower(c), "utf8mb4_") {
		return nil, redacted, check.Invalidf("mysql: URL %s: collation %q is refused; use a utf8mb4 collation (default utf8mb4_general_ci)", redacted, c)
	}
	if mode, ok := cfg.Params["sql_mode"]; ok {
		if strings.Contains(strings.ToUpper(mode), "NO_BACKSLASH_ESCAPES") {
			return nil, redacted, check.Invalidf("mysql: URL %s: sql_mode with NO_BACKSLASH_ESCAPES is refused: bun escapes backslashes in the strings it sends", redacted)
		}
	} else {
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params["sql_mode"] = sqlModeWithoutBackslashEscapes
	}
	return cfg, redacted, nil
}

// driverLog passes what go-sql-driver/mysql logs (a broken connection's
// "unexpected EOF", once per connection) to wharf's logger at debug level:
// the errors reach wharf's callers anyway, and during an outage the driver
// would otherwise print a line per connection to stderr.
type driverLog struct{ log *slog.Logger }

// Print implements gomysql.Logger.
func (l driverLog) Print(v ...any) {
	l.log.Debug("mysql driver: " + strings.TrimSpace(fmt.Sprintln(v...)))
}
