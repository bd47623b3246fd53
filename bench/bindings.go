package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/mysqldialect"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	"github.com/uptrace/bun/schema"

	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/mysql"
	"github.com/wharf-go/wharf/providers/postgres"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// wharfBinding is what the bench needs from one provider: the same public
// names on every dialect, with the dialect's own types.
type wharfBinding struct {
	Open      func(ctx context.Context, url string) (*bun.DB, error)
	Migrate   func(ctx context.Context, db bun.IDB, table string) error
	SetupSQL  func(table string) ([]string, error)
	NewOutbox func(db bun.IDB, table string) (ports.Outbox, error)
	// Bind returns o bound to db (WithDB).
	Bind func(o ports.Outbox, db bun.IDB) ports.Outbox
	// NewUoW is the provider's NewUnitOfWork whose transaction ports are
	// the outbox bound to the transaction.
	NewUoW func(db *bun.DB, build func(tx bun.IDB, _ ports.EventRecorder) (ports.Outbox, error)) (ports.UnitOfWork[ports.Outbox], error)
	RawDSN func(url string) (driver, dsn string, err error)
	// Dialect is bun's dialect; ClaimQuery the provider's exported
	// ClaimQuery (see libsql.go).
	Dialect    func() schema.Dialect
	ClaimQuery any
}

var wharfBindings = map[string]*wharfBinding{
	"sqlite": {
		Open: sqlite.Open,
		Migrate: func(ctx context.Context, db bun.IDB, table string) error {
			return sqlite.Migrate(ctx, db, sqlite.MigrateOptions{Outbox: sqlite.OutboxOptions{TableName: table}})
		},
		SetupSQL: func(table string) ([]string, error) {
			return sqlite.OutboxSetupStatements(sqlite.OutboxOptions{TableName: table})
		},
		NewOutbox: func(db bun.IDB, table string) (ports.Outbox, error) {
			return sqlite.NewOutbox(db, sqlite.OutboxOptions{TableName: table})
		},
		Bind: func(o ports.Outbox, db bun.IDB) ports.Outbox { return o.(*sqlite.Outbox).WithDB(db) },
		NewUoW: func(db *bun.DB, build func(bun.IDB, ports.EventRecorder) (ports.Outbox, error)) (ports.UnitOfWork[ports.Outbox], error) {
			return sqlite.NewUnitOfWork(db, build, sqlite.UnitOfWorkOptions{})
		},
		Dialect:    func() schema.Dialect { return sqlitedialect.New() },
		ClaimQuery: sqlite.ClaimQuery,
		RawDSN: func(url string) (string, string, error) {
			dsn, _, err := sqlite.DSN(url)
			return "sqlite", dsn, err
		},
	},
	"postgres": {
		Open: postgres.Open,
		Migrate: func(ctx context.Context, db bun.IDB, table string) error {
			return postgres.Migrate(ctx, db, postgres.MigrateOptions{Outbox: postgres.OutboxOptions{TableName: table}})
		},
		SetupSQL: func(table string) ([]string, error) {
			return postgres.OutboxSetupStatements(postgres.OutboxOptions{TableName: table})
		},
		NewOutbox: func(db bun.IDB, table string) (ports.Outbox, error) {
			return postgres.NewOutbox(db, postgres.OutboxOptions{TableName: table})
		},
		Bind: func(o ports.Outbox, db bun.IDB) ports.Outbox { return o.(*postgres.Outbox).WithDB(db) },
		NewUoW: func(db *bun.DB, build func(bun.IDB, ports.EventRecorder) (ports.Outbox, error)) (ports.UnitOfWork[ports.Outbox], error) {
			return postgres.NewUnitOfWork(db, build, postgres.UnitOfWorkOptions{})
		},
		Dialect:    func() schema.Dialect { return pgdialect.New() },
		ClaimQuery: postgres.ClaimQuery,
		// The raw baseline uses pgx's default (extended protocol, statement
		// cache) with explicitly prepared statements, and custom plans: after
		// five executions PostgreSQL would otherwise switch the prepared
		// claim to a generic plan that merge-joins the whole primary key
		// (measured: 5,063 instead of 13,627 msgs/s at one worker).
		RawDSN: func(url string) (string, string, error) {
			return "pgx", withParam(url, "plan_cache_mode", "force_custom_plan"), nil
		},
	},
	"mysql": {
		Open: mysql.Open,
		Migrate: func(ctx context.Context, db bun.IDB, table string) error {
			return mysql.Migrate(ctx, db, mysql.MigrateOptions{Outbox: mysql.OutboxOptions{TableName: table}})
		},
		SetupSQL: func(table string) ([]string, error) {
			return mysql.OutboxSetupStatements(mysql.OutboxOptions{TableName: table})
		},
		NewOutbox: func(db bun.IDB, table string) (ports.Outbox, error) {
			return mysql.NewOutbox(db, mysql.OutboxOptions{TableName: table})
		},
		Bind: func(o ports.Outbox, db bun.IDB) ports.Outbox { return o.(*mysql.Outbox).WithDB(db) },
		NewUoW: func(db *bun.DB, build func(bun.IDB, ports.EventRecorder) (ports.Outbox, error)) (ports.UnitOfWork[ports.Outbox], error) {
			return mysql.NewUnitOfWork(db, build, mysql.UnitOfWorkOptions{})
		},
		Dialect:    func() schema.Dialect { return mysqldialect.New() },
		ClaimQuery: mysql.ClaimQuery,
		RawDSN: func(url string) (string, string, error) {
			dsn, err := mysql.DSN(url)
			return "mysql", dsn, err
		},
	},
}

func withParam(u, k, v string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + k + "=" + v
}

func binding(dialect string) (*wharfBinding, error) {
	b := wharfBindings[dialect]
	if b == nil {
		return nil, fmt.Errorf("no wharf provider for %s", dialect)
	}
	return b, nil
}
