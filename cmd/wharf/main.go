// Command wharf operates wharf's tables from a shell: schema migrations,
// the outbox (stats, listing, requeue and purge of dead letters), the
// idempotency store (stats, listing, purge of expired records) and the web
// console (wharf ui, package console).
//
//	go install github.com/wharf-go/wharf/cmd/wharf@latest
//	export POSTGRES_DB_URL=postgres://user:password@localhost:5432/app
//	wharf migrate status
//	wharf outbox list --status dead
//	wharf ui --addr 127.0.0.1:8080
//
// Run "wharf help" for the commands, flags and exit statuses. The command
// uses the standard flag package: no dependency beyond wharf's own.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/wharf-go/wharf/providers/mysql"    // mysql:// and mariadb:// URLs
	_ "github.com/wharf-go/wharf/providers/postgres" // postgres:// URLs
	_ "github.com/wharf-go/wharf/providers/sqlite"   // file: and sqlite: URLs
)

// Exit statuses.
const (
	exitOK          = 0
	exitError       = 1 // a database or I/O error
	exitUsage       = 2 // bad flags, arguments or URL
	exitPending     = 3 // migrate status: migrations are pending
	exitTooNew      = 4 // the schema is newer than this wharf
	exitNotDone     = 5 // a confirmation was declined (or could not be asked)
	exitNotFound    = 6 // a named message is not in the outbox (or not a dead letter)
	interruptStatus = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// env is the command's outside world, replaced in tests.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// codedError carries an exit status other than exitError.
type codedError struct {
	code int
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }

func withCode(code int, err error) error { return &codedError{code: code, err: err} }

func usageErrorf(format string, args ...any) error {
	return withCode(exitUsage, fmt.Errorf(format, args...))
}

// run runs one command and returns its exit status.
func run(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	case "version", "--version":
		fmt.Fprintln(e.stdout, version())
		return exitOK
	}
	cmd, rest, err := lookup(args)
	if err != nil {
		fmt.Fprintf(e.stderr, "wharf: %v\n\nRun \"wharf help\" for the commands.\n", err)
		return exitUsage
	}
	c, positional, err := parse(cmd, rest, e)
	if errors.Is(err, errHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "wharf %s: %v\n", cmd.path, err)
		return exitUsage
	}
	defer c.close()
	err = cmd.run(ctx, c, positional)
	if err == nil {
		return exitOK
	}
	code := exitError
	var ee *codedError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if ctx.Err() != nil && code == exitError {
		code = interruptStatus
	}
	fmt.Fprintf(e.stderr, "wharf %s: %s\n", cmd.path, c.redact(err.Error()))
	return code
}

const usage = `wharf operates wharf's tables: schema migrations, the outbox and the idempotency store.

Usage:
  wharf migrate up                      apply pending migrations (adopts tables created before versioning)
  wharf migrate status                  show each table's schema version; exit 3 if migrations are pending
  wharf migrate sql [--dialect D] [--format plain|goose|golang-migrate|bun] [--since N] [--first-version N] [--out DIR]
                                        print (or write) the migrations as SQL for psql/mysql/sqlite3, goose, golang-migrate or bun/migrate
  wharf outbox stats                    count messages: ready, scheduled, leased, dead
  wharf outbox list [--status pending|dead] [--topic T] [--key K] [--after ID] [--limit N]
  wharf outbox show ID                  one message with its payload, headers and last error
  wharf outbox requeue ID... | --all    turn dead letters back into pending messages (--all asks first)
  wharf outbox purge --older-than AGE   delete dead letters last updated before AGE ago (72h, 14d) or a time (asks first)
  wharf outbox watch [--interval 2s]    stats refreshed in place until Ctrl-C
  wharf idempotency stats               count records: in progress, abandoned, completed, expired
  wharf idempotency list [--namespace N] [--key K] [--status in_progress|completed] [--expired|--live] [--after C] [--limit N]
  wharf idempotency purge [--expired-before AGE]  delete expired records (asks first)
  wharf ui [--addr 127.0.0.1:8080] [--tls-cert F --tls-key F] [--allow-host H] [--read-only] [--stats-interval D]
                                        serve the web console; any address but a loopback one needs $WHARF_UI_TOKEN (or --token) and TLS (or --insecure-http)
  wharf version

Flags of every command:
  --db URL                 the database: file:app.db, postgres://user:password@host:5432/db, mysql://user:password@host:3306/db
  --dialect D              sqlite, postgres or mysql: picks that dialect's variable below (and migrate sql's dialect)
  --outbox-table NAME      default outbox_messages (or $WHARF_OUTBOX_TABLE)
  --idempotency-table NAME default idempotency_records (or $WHARF_IDEMPOTENCY_TABLE)
  --migrations-table NAME  default wharf_schema_migrations (or $WHARF_MIGRATIONS_TABLE)
  --json                   machine-readable output
  --yes                    do not ask before --all requeues and purges
  --timeout D              give up after D (e.g. 30s); default none

The database is --db, else the one of SQLITE_DB_URL, POSTGRES_DB_URL and MYSQL_DB_URL that is set
(--dialect picks when several are), else DATABASE_URL. Prefer a variable to --db: a command line is
visible to other users of the machine. Errors never show the password.

Exit status: 0 done; 1 database or I/O error; 2 bad usage; 3 migrations pending (migrate status);
4 the schema is newer than this wharf; 5 not confirmed; 6 a named message was not found or not requeued;
130 interrupted.
`
