// Package infra is the todo app's infrastructure: bun repositories, the
// schema, and the app-database provider that builds the unit of work, the
// outbox, the idempotency store and the repositories on whichever database
// the wharf database provider opened. It is the only package of the app that
// sees bun and the provider packages.
package infra

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/examples/todo/internal/app"
	"github.com/wharf-go/wharf/ports"
)

// Dialect names a database.
type Dialect string

// The dialects.
const (
	// SQLite: providers/sqlite, SQLITE_DB_URL.
	SQLite Dialect = "sqlite"
	// Postgres: providers/postgres, POSTGRES_DB_URL.
	Postgres Dialect = "postgres"
	// MySQL: providers/mysql (MySQL 8.0+ and MariaDB 10.6+), MYSQL_DB_URL.
	MySQL Dialect = "mysql"
)

// stores are the outbox and idempotency store on the root database, with
// functions that bind them to a transaction (the providers' WithDB).
type stores struct {
	outbox         ports.Outbox
	outboxFor      func(tx bun.IDB) ports.Outbox
	idempotency    ports.Idempotency
	idempotencyFor func(tx bun.IDB) ports.Idempotency
}

// buildFunc makes the TxPorts of one transaction.
type buildFunc = func(tx bun.IDB, events ports.EventRecorder) (app.TxPorts, error)

// driver is what differs between dialects: which wharf provider package to
// call, and the DDL of the app's tables.
type driver struct {
	// envVar is the provider's URL variable, e.g. "SQLITE_DB_URL".
	envVar string
	// newProvider returns the wharf database provider for url.
	newProvider func(url string, logger *slog.Logger) core.Provider
	// migrate creates wharf's outbox and idempotency tables.
	migrate func(ctx context.Context, db bun.IDB) error
	// schema creates the app's tables and indexes, idempotently.
	schema func(ctx context.Context, db bun.IDB) error
	// stores builds the outbox and idempotency store.
	stores func(db *bun.DB, logger *slog.Logger) (stores, error)
	// unitOfWork builds the unit of work.
	unitOfWork func(db *bun.DB, build buildFunc, logger *slog.Logger) (ports.UnitOfWork[app.TxPorts], error)
}

// drivers holds the compiled-in dialects.
var drivers = map[Dialect]driver{}

func register(d Dialect, drv driver) { drivers[d] = drv }

// Dialects returns the supported dialects, sorted.
func Dialects() []Dialect {
	ds := make([]Dialect, 0, len(drivers))
	for d := range drivers {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

// ParseDialect returns the dialect named s (case-insensitive; "mariadb" is
// MySQL), or an error listing the supported ones.
func ParseDialect(s string) (Dialect, error) {
	d := Dialect(strings.ToLower(strings.TrimSpace(s)))
	if d == "mariadb" {
		d = MySQL
	}
	if _, ok := drivers[d]; !ok {
		names := make([]string, 0, len(drivers))
		for _, d := range Dialects() {
			names = append(names, string(d))
		}
		return "", core.Invalidf("unknown database %q; use one of %s", s, strings.Join(names, ", "))
	}
	return d, nil
}

// EnvVar returns the URL variable of d's wharf provider, e.g.
// "POSTGRES_DB_URL" ("" for an unknown dialect).
func EnvVar(d Dialect) string { return drivers[d].envVar }

func lookup(d Dialect) (driver, error) {
	drv, ok := drivers[d]
	if !ok {
		_, err := ParseDialect(string(d))
		return driver{}, err
	}
	return drv, nil
}

// NewDBProvider returns d's wharf database provider (sqlite.NewProvider,
// postgres.NewProvider, mysql.NewProvider): it opens url (empty: the
// provider's environment variable) on Start, installs the *bun.DB as port
// "db" and closes it on Stop.
func NewDBProvider(d Dialect, url string, logger *slog.Logger) (core.Provider, error) {
	drv, err := lookup(d)
	if err != nil {
		return nil, err
	}
	return drv.newProvider(url, logger), nil
}

// Migrate creates wharf's outbox and idempotency tables and the app's
// tables and indexes on db, if they do not exist. It runs on every start.
func Migrate(ctx context.Context, db bun.IDB, d Dialect) error {
	drv, err := lookup(d)
	if err != nil {
		return err
	}
	if err := drv.migrate(ctx, db); err != nil {
		return fmt.Errorf("migrate wharf tables: %w", err)
	}
	if err := drv.schema(ctx, db); err != nil {
		return fmt.Errorf("migrate todo tables (%s): %w", d, err)
	}
	return nil
}

// execAll returns a schema function running stmts in order.
func execAll(stmts []string) func(ctx context.Context, db bun.IDB) error {
	return func(ctx context.Context, db bun.IDB) error {
		for i, stmt := range stmts {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("statement %d of %d: %w", i+1, len(stmts), err)
			}
		}
		return nil
	}
}

// Port names installed by AppProvider.
const (
	// PortUnitOfWork: ports.UnitOfWork[app.TxPorts].
	PortUnitOfWork = "todo.uow"
	// PortOutbox: ports.Outbox on the root database (for the relay). It
	// also implements ports.OutboxAdmin.
	PortOutbox = "todo.outbox"
	// PortIdempotency: ports.Idempotency on the root database (for the HTTP
	// middleware's reservations).
	PortIdempotency = "todo.idempotency"
	// PortTodos: domain.TodoRepository on the root database (reads).
	PortTodos = "todo.todos"
	// PortActivity: app.ActivityRepository on the root database (reads).
	PortActivity = "todo.activity"
)

// AppProviderOptions configures NewAppProvider.
type AppProviderOptions struct {
	// Dialect of the database. Required.
	Dialect Dialect
	// DBPort is the port of the *bun.DB; default "db".
	DBPort string
	// Logger; nil discards.
	Logger *slog.Logger
}

// AppProvider is the app-database provider. Register it after the database
// provider: on Start it looks up the *bun.DB port, runs the migrations, and
// installs the unit of work, outbox, idempotency store and repositories as
// the Port* ports; on Stop it removes them (the database provider, stopped
// after it, closes the pool).
type AppProvider struct {
	opts      AppProviderOptions
	installed []string
}

// NewAppProvider returns the app-database provider.
func NewAppProvider(opts AppProviderOptions) *AppProvider {
	if opts.DBPort == "" {
		opts.DBPort = "db"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &AppProvider{opts: opts}
}

// Name implements core.Provider.
func (p *AppProvider) Name() string { return "todo-app-db" }

// Start implements core.Provider.
func (p *AppProvider) Start(ctx context.Context, a *core.App) error {
	drv, err := lookup(p.opts.Dialect)
	if err != nil {
		return err
	}
	db, err := core.Port[*bun.DB](a, p.opts.DBPort)
	if err != nil {
		return err
	}
	if err := Migrate(ctx, db, p.opts.Dialect); err != nil {
		return err
	}
	st, err := drv.stores(db, p.opts.Logger)
	if err != nil {
		return err
	}
	uow, err := drv.unitOfWork(db, func(tx bun.IDB, _ ports.EventRecorder) (app.TxPorts, error) {
		return app.TxPorts{
			Todos:    NewTodoRepository(tx),
			Activity: NewActivityRepository(tx),
			// Events go to the outbox in this transaction, with one ordering
			// key per todo so that its events are delivered in order.
			Events:      core.NewOutboxEventRecorder(st.outboxFor(tx), core.OutboxEventRecorderOptions{Key: orderingKey}),
			Idempotency: st.idempotencyFor(tx),
		}, nil
	}, p.opts.Logger)
	if err != nil {
		return err
	}
	for _, port := range []struct {
		name  string
		value any
	}{
		{PortUnitOfWork, uow},
		{PortOutbox, st.outbox},
		{PortIdempotency, st.idempotency},
		{PortTodos, NewTodoRepository(db)},
		{PortActivity, NewActivityRepository(db)},
	} {
		if err := a.SetPort(port.name, port.value); err != nil {
			p.removePorts(a)
			return err
		}
		p.installed = append(p.installed, port.name)
	}
	p.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "todo tables migrated", slog.String("dialect", string(p.opts.Dialect)))
	return nil
}

// Stop implements core.Provider.
func (p *AppProvider) Stop(_ context.Context, a *core.App) error {
	p.removePorts(a)
	return nil
}

func (p *AppProvider) removePorts(a *core.App) {
	for _, name := range p.installed {
		a.RemovePort(name)
	}
	p.installed = nil
}

// orderingKey gives all events of one todo the same outbox ordering key.
func orderingKey(ev ports.Event) string {
	var p app.TodoEvent
	if err := json.Unmarshal(ev.Payload, &p); err != nil || p.ID == "" {
		return ""
	}
	return "todo:" + p.ID
}
