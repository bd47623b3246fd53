package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/wharf-go/wharf/examples/todo/internal/infra"
)

// Environment variables read by loadConfig (besides the providers' URL
// variables, POSTGRES_DB_URL, MYSQL_DB_URL and SQLITE_DB_URL).
const (
	envDB       = "TODO_DB"
	envAddr     = "TODO_ADDR"
	envLogLevel = "TODO_LOG_LEVEL"
)

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
	// Dialect and URL select the database (see chooseDatabase); URLSource
	// says where the URL came from, for the log (never the URL itself: it
	// may hold a password).
	Dialect   infra.Dialect
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
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: todo [flags]\n\nA todo JSON API on wharf. Database: %s.\n\nFlags:\n", databaseRule)
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
	dialect, url, source, err := chooseDatabase(getenv)
	if err != nil {
		return config{}, err
	}
	return config{
		Addr: *addr, Dialect: dialect, URL: url, URLSource: source,
		Logger:               slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: lvl})),
		RelayPollInterval:    defaultRelayPollInterval,
		RelayMaxPollInterval: defaultRelayMaxPollInterval,
		ShutdownTimeout:      *shutdown,
	}, nil
}

// databaseRule is chooseDatabase's rule, for -h and errors.
const databaseRule = "TODO_DB=sqlite|postgres|mysql if set, else whichever of POSTGRES_DB_URL, MYSQL_DB_URL, SQLITE_DB_URL is set, else SQLite at " + defaultSQLiteURL

// chooseDatabase applies the rule:
//
//  1. TODO_DB=sqlite|postgres|mysql (mariadb = mysql) picks the dialect, whose
//     URL variable must then be set — except SQLite, which defaults to
//     file:todo.db.
//  2. Otherwise the one URL variable that is set (POSTGRES_DB_URL,
//     MYSQL_DB_URL or SQLITE_DB_URL) picks it; several set is an error
//     asking for TODO_DB.
//  3. Otherwise SQLite at file:todo.db, in the working directory.
func chooseDatabase(getenv func(string) string) (d infra.Dialect, url, source string, err error) {
	if name := getenv(envDB); name != "" {
		d, err := infra.ParseDialect(name)
		if err != nil {
			return "", "", "", fmt.Errorf("%s: %w", envDB, err)
		}
		v := infra.EnvVar(d)
		if url := getenv(v); url != "" {
			return d, url, v, nil
		}
		if d == infra.SQLite {
			return d, defaultSQLiteURL, "default", nil
		}
		return "", "", "", fmt.Errorf("%s=%s but %s is not set; set it to the database URL", envDB, name, v)
	}
	var set []infra.Dialect
	for _, d := range infra.Dialects() {
		if getenv(infra.EnvVar(d)) != "" {
			set = append(set, d)
		}
	}
	switch len(set) {
	case 0:
		return infra.SQLite, defaultSQLiteURL, "default", nil
	case 1:
		v := infra.EnvVar(set[0])
		return set[0], getenv(v), v, nil
	default:
		vars := make([]string, len(set))
		names := make([]string, len(set))
		for i, d := range set {
			vars[i], names[i] = infra.EnvVar(d), string(d)
		}
		return "", "", "", fmt.Errorf("several database URLs are set (%s); choose one with %s=%s", strings.Join(vars, ", "), envDB, strings.Join(names, "|"))
	}
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
