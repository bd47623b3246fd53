package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/wharf-go/wharf/providers/mysql"
	"github.com/wharf-go/wharf/providers/postgres"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// Environment variables read by loadConfig (besides the database URL
// variables, POSTGRES_DB_URL, MYSQL_DB_URL and SQLITE_DB_URL: see
// chooseDatabase).
const (
	envDB       = "TODO_DB"
	envAddr     = "TODO_ADDR"
	envLogLevel = "TODO_LOG_LEVEL"
	envQueryLog = "TODO_QUERY_LOG"
)

// Query log settings (-query-log, TODO_QUERY_LOG).
const (
	queryLogOff    = "off"
	queryLogOn     = "on"
	queryLogParams = "params" // with parameter values: development only
)

// slowQuery is the query log's slow-statement threshold: slower statements
// are logged at warn level.
const slowQuery = 200 * time.Millisecond

// Defaults.
const (
	defaultAddr      = "127.0.0.1:8080"
	defaultSQLiteURL = "file:todo.db"
	// The relay polls for new events every 100ms, backing off to 1s while
	// idle, so the activity feed follows a write within about a second.
	// (PostgreSQL's LISTEN/NOTIFY wakes it at once anyway.)
	defaultRelayPollInterval    = 100 * time.Millisecond
	defaultRelayMaxPollInterval = time.Second
)

// config is everything newServer needs.
type config struct {
	// Addr is the listen address.
	Addr string
	// URL is the database's (see chooseDatabase): its scheme picks the
	// dialect. Database names it ("sqlite", "postgres" or "mysql") and
	// URLSource says where the URL came from, for the log (never the URL
	// itself: it may hold a password).
	Database  string
	URL       string
	URLSource string
	// Logger for everything long-lived; nil discards.
	Logger *slog.Logger
	// RelayPollInterval and RelayMaxPollInterval tune how soon the relay
	// sees new outbox messages; zero means the relay's defaults.
	RelayPollInterval    time.Duration
	RelayMaxPollInterval time.Duration
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// Telemetry configures traces and metrics (see telemetry.go); the zero
	// value exports no spans and serves no metrics.
	Telemetry telemetryConfig
	// QueryLog is queryLogOff (or empty), queryLogOn or queryLogParams.
	QueryLog string
}

// loadConfig reads the flags in args and the environment (through getenv).
// Flags win over variables: -addr over TODO_ADDR, -log-level over
// TODO_LOG_LEVEL. Log lines go to logOut.
func loadConfig(args []string, getenv func(string) string, logOut io.Writer) (config, error) {
	fs := flag.NewFlagSet("todo", flag.ContinueOnError)
	fs.SetOutput(logOut)
	addr := fs.String("addr", firstNonEmpty(getenv(envAddr), defaultAddr), "listen address (env "+envAddr+")")
	level := fs.String("log-level", firstNonEmpty(getenv(envLogLevel), "info"), "debug, info, warn or error (env "+envLogLevel+")")
	shutdown := fs.Duration("shutdown-timeout", 15*time.Second, "how long a graceful shutdown may take")
	metrics := fs.Bool("metrics", getenv(envMetrics) != "false", "serve Prometheus metrics at "+metricsPath+" (env "+envMetrics+"=false to disable)")
	queryLog := fs.String("query-log", firstNonEmpty(getenv(envQueryLog), queryLogOff),
		"log every SQL statement at info level: off, on (parameter values redacted) or params (values shown: development only) (env "+envQueryLog+")")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: todo [flags]\n\nA todo JSON API on wharf. Database: %s.\nTraces: %s=none|console|otlp (OTLP over HTTP, configured by OTEL_EXPORTER_OTLP_*).\n\nFlags:\n", databaseRule, envTracesExporter)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q; see -h", fs.Args())
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return config{}, fmt.Errorf("log level %q: use debug, info, warn or error", *level)
	}
	switch *queryLog {
	case queryLogOff, queryLogOn, queryLogParams:
	default:
		return config{}, fmt.Errorf("query log %q: use off, on or params", *queryLog)
	}
	traces, err := tracesFromEnv(getenv)
	if err != nil {
		return config{}, err
	}
	dbName, url, source, err := chooseDatabase(getenv)
	if err != nil {
		return config{}, err
	}
	return config{
		Addr: *addr, Database: dbName, URL: url, URLSource: source,
		Logger:               slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: lvl})),
		RelayPollInterval:    defaultRelayPollInterval,
		RelayMaxPollInterval: defaultRelayMaxPollInterval,
		ShutdownTimeout:      *shutdown,
		Telemetry:            telemetryConfig{Traces: traces, TraceOut: os.Stdout, Metrics: *metrics},
		QueryLog:             *queryLog,
	}, nil
}

// databaseRule is chooseDatabase's rule, for -h and errors.
const databaseRule = "TODO_DB=sqlite|postgres|mysql if set, else whichever of POSTGRES_DB_URL, MYSQL_DB_URL, SQLITE_DB_URL is set, else SQLite at " + defaultSQLiteURL

// database is one database the app runs on: the name TODO_DB takes, the
// variable holding its URL, and the provider's URL parser. The URL's scheme
// picks the dialect when the driver is opened (wharf.Open); the parser only
// makes sure, before anything is opened, that the URL in a dialect's
// variable is one of that dialect, with the provider's precise message.
type database struct {
	name   string
	envVar string
	check  func(url string) error
}

// databases are the supported databases, sorted by name.
var databases = []database{
	{name: "mysql", envVar: mysql.EnvVar, check: func(u string) error { _, err := mysql.DSN(u); return err }},
	{name: "postgres", envVar: postgres.EnvVar, check: func(u string) error { _, err := postgres.ParseURL(u); return err }},
	{name: "sqlite", envVar: sqlite.EnvVar, check: func(u string) error { _, _, err := sqlite.DSN(u); return err }},
}

// chooseDatabase applies the rule:
//
//  1. TODO_DB=sqlite|postgres|mysql (mariadb = mysql) picks the database,
//     whose URL variable must then be set — except SQLite, which defaults
//     to file:todo.db.
//  2. Otherwise the one URL variable that is set (POSTGRES_DB_URL,
//     MYSQL_DB_URL or SQLITE_DB_URL) picks it; several set is an error
//     asking for TODO_DB.
//  3. Otherwise SQLite at file:todo.db, in the working directory.
//
// It returns the database's name, its URL and where the URL came from. A
// URL that is not of its variable's dialect is an error.
func chooseDatabase(getenv func(string) string) (name, url, source string, err error) {
	db, url, source, err := pickDatabase(getenv)
	if err != nil {
		return "", "", "", err
	}
	if err := db.check(url); err != nil {
		return "", "", "", fmt.Errorf("%s: %w", source, err)
	}
	return db.name, url, source, nil
}

func pickDatabase(getenv func(string) string) (db database, url, source string, err error) {
	if name := getenv(envDB); name != "" {
		db, err := lookupDatabase(name)
		if err != nil {
			return database{}, "", "", fmt.Errorf("%s: %w", envDB, err)
		}
		if url := getenv(db.envVar); url != "" {
			return db, url, db.envVar, nil
		}
		if db.name == "sqlite" {
			return db, defaultSQLiteURL, "default", nil
		}
		return database{}, "", "", fmt.Errorf("%s=%s but %s is not set; set it to the database URL", envDB, name, db.envVar)
	}
	var set []database
	for _, db := range databases {
		if getenv(db.envVar) != "" {
			set = append(set, db)
		}
	}
	switch len(set) {
	case 0:
		db, _ := lookupDatabase("sqlite")
		return db, defaultSQLiteURL, "default", nil
	case 1:
		return set[0], getenv(set[0].envVar), set[0].envVar, nil
	default:
		vars := make([]string, len(set))
		names := make([]string, len(set))
		for i, db := range set {
			vars[i], names[i] = db.envVar, db.name
		}
		return database{}, "", "", fmt.Errorf("several database URLs are set (%s); choose one with %s=%s", strings.Join(vars, ", "), envDB, strings.Join(names, "|"))
	}
}

// lookupDatabase returns the database named s (case-insensitive; "mariadb"
// is MySQL), or an error listing the supported ones.
func lookupDatabase(s string) (database, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	if name == "mariadb" {
		name = "mysql"
	}
	names := make([]string, len(databases))
	for i, db := range databases {
		if db.name == name {
			return db, nil
		}
		names[i] = db.name
	}
	return database{}, fmt.Errorf("unknown database %q; use one of %s", s, strings.Join(names, ", "))
}

// describeSource says where the database URL came from, for errors: the
// variable's name, or that it is the default.
func (c config) describeSource() string {
	if c.URLSource == "default" {
		return fmt.Sprintf("the default database %s (set %s or %s to choose another)", defaultSQLiteURL, sqlite.EnvVar, envDB)
	}
	return c.URLSource
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
