package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/providers/mysql"
	"github.com/wharf-go/wharf/providers/postgres"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// command is one leaf of the command tree.
type command struct {
	path string // "outbox list"
	// flags registers the command's own flags on fs.
	flags func(fs *flag.FlagSet, c *cli)
	// run runs the command with its positional arguments.
	run func(ctx context.Context, c *cli, args []string) error
}

var commands = []*command{
	{path: "migrate up", run: migrateUp},
	{path: "migrate status", run: migrateStatus},
	{path: "migrate sql", flags: migrateSQLFlags, run: migrateSQL},
	{path: "outbox stats", run: outboxStats},
	{path: "outbox list", flags: outboxListFlags, run: outboxList},
	{path: "outbox show", run: outboxShow},
	{path: "outbox requeue", flags: outboxRequeueFlags, run: outboxRequeue},
	{path: "outbox purge", flags: outboxPurgeFlags, run: outboxPurge},
	{path: "outbox watch", flags: outboxWatchFlags, run: outboxWatch},
	{path: "idempotency stats", run: idemStats},
	{path: "idempotency list", flags: idemListFlags, run: idemList},
	{path: "idempotency purge", flags: idemPurgeFlags, run: idemPurge},
	{path: "ui", flags: uiFlagSet, run: uiServe},
}

func lookup(args []string) (*command, []string, error) {
	for _, c := range commands {
		if c.path == args[0] { // a command of one word
			return c, args[1:], nil
		}
	}
	if len(args) < 2 {
		var subs []string
		for _, c := range commands {
			if group, sub, _ := strings.Cut(c.path, " "); group == args[0] {
				subs = append(subs, sub)
			}
		}
		if len(subs) > 0 {
			return nil, nil, fmt.Errorf("%s needs a command: %s", args[0], strings.Join(subs, ", "))
		}
		return nil, nil, fmt.Errorf("unknown command %q", args[0])
	}
	for _, c := range commands {
		if c.path == args[0]+" "+args[1] {
			return c, args[2:], nil
		}
	}
	return nil, nil, fmt.Errorf("unknown command %q", args[0]+" "+args[1])
}

// cli is the state of one command: its flags, output and database.
type cli struct {
	env
	// Flags of every command.
	dbURL, dialect                   string
	outboxTable, idemTable, migTable string
	json, yes                        bool
	timeout                          time.Duration
	// Flags of some commands.
	f cmdFlags

	url string // the resolved database URL, for redaction
	drv *wharf.Driver
}

// cmdFlags are the flags of single commands.
type cmdFlags struct {
	format                   string
	since, firstVersion      int
	out                      string
	force                    bool
	status, topic, key       string
	namespace, after         string
	limit                    int
	all, expired, live       bool
	olderThan, expiredBefore string
	interval                 time.Duration
	count                    int
	ui                       uiFlags
}

var errHelp = errors.New("help")

// parse reads args into a cli; flags may follow positional arguments.
func parse(cmd *command, args []string, e env) (*cli, []string, error) {
	c := &cli{env: e}
	fs := flag.NewFlagSet("wharf "+cmd.path, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&c.dbURL, "db", "", "database URL (default: $SQLITE_DB_URL, $POSTGRES_DB_URL, $MYSQL_DB_URL or $DATABASE_URL)")
	fs.StringVar(&c.dialect, "dialect", "", "sqlite, postgres or mysql")
	fs.StringVar(&c.outboxTable, "outbox-table", e.getenv("WHARF_OUTBOX_TABLE"), "outbox table (default outbox_messages)")
	fs.StringVar(&c.idemTable, "idempotency-table", e.getenv("WHARF_IDEMPOTENCY_TABLE"), "idempotency table (default idempotency_records)")
	fs.StringVar(&c.migTable, "migrations-table", e.getenv("WHARF_MIGRATIONS_TABLE"), "schema version table (default "+wharf.DefaultMigrationsTable+")")
	fs.BoolVar(&c.json, "json", false, "machine-readable output")
	fs.BoolVar(&c.yes, "yes", false, "do not ask for confirmation")
	fs.DurationVar(&c.timeout, "timeout", 0, "give up after this long (0: never)")
	if cmd.flags != nil {
		cmd.flags(fs, c)
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, nil, errHelp
			}
			return nil, nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	if c.timeout < 0 {
		return nil, nil, fmt.Errorf("--timeout %v is negative", c.timeout)
	}
	return c, positional, nil
}

func (c *cli) close() {
	if c.drv != nil {
		_ = c.drv.Close()
	}
}

// dialectVars are the variables of each dialect's URL.
var dialectVars = []struct{ dialect, name string }{
	{"sqlite", sqlite.EnvVar}, {"postgres", postgres.EnvVar}, {"mysql", mysql.EnvVar},
}

// resolveURL returns the database URL and where it came from.
func (c *cli) resolveURL() (string, string, error) {
	if c.dbURL != "" {
		return c.dbURL, "--db", nil
	}
	var set []string
	for _, v := range dialectVars {
		if c.getenv(v.name) == "" {
			continue
		}
		if c.dialect == v.dialect {
			return c.getenv(v.name), v.name, nil
		}
		set = append(set, v.name)
	}
	switch {
	case c.dialect != "" && len(set) > 0:
		return "", "", usageErrorf("--dialect %s, but its variable is not set (set: %s)", c.dialect, strings.Join(set, ", "))
	case len(set) == 1:
		return c.getenv(set[0]), set[0], nil
	case len(set) > 1:
		return "", "", usageErrorf("%s are all set; pick one with --dialect or pass --db", strings.Join(set, " and "))
	case c.getenv("DATABASE_URL") != "":
		return c.getenv("DATABASE_URL"), "DATABASE_URL", nil
	}
	return "", "", usageErrorf("no database: pass --db URL or set SQLITE_DB_URL, POSTGRES_DB_URL, MYSQL_DB_URL or DATABASE_URL (e.g. %s)",
		"postgres://user:password@localhost:5432/app")
}

// options are the driver options of the command's flags.
func (c *cli) options() wharf.Options {
	return wharf.Options{
		Outbox:      wharf.OutboxOptions{TableName: c.outboxTable},
		Idempotency: wharf.IdempotencyOptions{TableName: c.idemTable},
		Migrations:  wharf.MigrationOptions{TableName: c.migTable},
		Pool:        wharf.PoolOptions{MaxOpenConns: 2},
		Logger:      slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// connectTimeout bounds opening the database.
const connectTimeout = 15 * time.Second

// open opens the database.
func (c *cli) open(ctx context.Context) (*wharf.Driver, error) {
	u, source, err := c.resolveURL()
	if err != nil {
		return nil, err
	}
	c.url = u
	if c.dialect != "" {
		if e, err := dialect.ByURL(u); err == nil && e.Name != c.dialect {
			return nil, usageErrorf("--dialect %s, but the URL from %s is a %s URL", c.dialect, source, e.Name)
		}
	}
	octx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	drv, err := wharf.Open(octx, u, c.options())
	if err != nil {
		code := exitError
		if errors.Is(err, errInvalid) {
			code = exitUsage
		}
		return nil, withCode(code, fmt.Errorf("open the database of %s: %w", source, err))
	}
	c.drv = drv
	return drv, nil
}

// bareRedactLength is the shortest password redacted wherever it appears;
// a shorter one is redacted where URLs and DSNs carry it, after its user
// name ("user:password"), since replacing a short word everywhere garbles
// the message around it (the test servers' password is "wharf").
const bareRedactLength = 8

// redact replaces the database password, in every spelling, in s. It is
// a safety net: wharf's own errors do not repeat passwords.
func (c *cli) redact(s string) string {
	for _, u := range []string{c.url, c.dbURL} {
		user, pass := credentials(u)
		if pass == "" {
			continue
		}
		for _, p := range []string{pass, url.QueryEscape(pass), url.PathEscape(pass), url.UserPassword("", pass).String()[1:]} {
			if len(pass) >= bareRedactLength {
				s = strings.ReplaceAll(s, p, "xxxxx")
				continue
			}
			for _, u := range []string{user, url.QueryEscape(user), url.PathEscape(user)} {
				s = strings.ReplaceAll(s, u+":"+p, u+":xxxxx")
			}
		}
	}
	return s
}

// credentials returns the user and password of a database URL, also from
// one that does not parse (between "://" and the last "@").
func credentials(u string) (user, pass string) {
	if p, err := url.Parse(u); err == nil && p.User != nil {
		pass, _ = p.User.Password()
		return p.User.Username(), pass
	}
	at, i := strings.LastIndex(u, "@"), strings.Index(u, "://")
	if i < 0 || at < i+3 {
		return "", ""
	}
	user, pass, _ = strings.Cut(u[i+3:at], ":")
	return user, pass
}

// confirm asks question on stderr and reads the answer from stdin, unless
// --yes. A declined or unreadable answer is exitNotDone.
func (c *cli) confirm(question string) error {
	if c.yes {
		return nil
	}
	fmt.Fprintf(c.stderr, "%s [y/N] ", question)
	line, err := bufio.NewReader(c.stdin).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	if answer == "y" || answer == "yes" {
		return nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return withCode(exitNotDone, fmt.Errorf("read the answer: %w; pass --yes to run without asking", err))
	}
	if answer == "" && err != nil {
		fmt.Fprintln(c.stderr)
		return withCode(exitNotDone, errors.New("not confirmed (no answer on stdin); pass --yes to run without asking"))
	}
	return withCode(exitNotDone, errors.New("not confirmed; nothing changed"))
}

// withTimeout applies --timeout.
func (c *cli) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeout(ctx, c.timeout)
	}
	return context.WithCancel(ctx)
}

// parseAge reads "72h", "14d" (days) or an RFC 3339 time, and returns the
// instant it names (an age counts back from now).
func parseAge(flagName, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, usageErrorf("%s is required: an age such as 72h or 14d, or a time such as 2025-01-31T00:00:00Z", flagName)
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	s := v
	unit := time.Duration(1)
	if strings.HasSuffix(s, "d") {
		s, unit = strings.TrimSuffix(s, "d")+"h", 24
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, usageErrorf("%s %q is neither an age (72h, 90m, 14d) nor an RFC 3339 time (2025-01-31T00:00:00Z)", flagName, v)
	}
	return now.Add(-d * unit), nil
}

func version() string {
	v := "(devel)"
	goVersion := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		goVersion = " " + bi.GoVersion
	}
	return "wharf " + v + goVersion
}
