// Package postgres implements wharf's ports on PostgreSQL through
// uptrace/bun (pgdialect) and pgx v5's database/sql driver.
//
// The same names exist in providers/sqlite and providers/mysql, so moving
// between databases changes one import and one environment variable:
//
//	app.Register(postgres.NewProvider(postgres.Options{}))   // POSTGRES_DB_URL=postgres://user:pw@host/app
//	db, _ := core.Port[*bun.DB](app, "db")
//	_ = postgres.Migrate(ctx, db, postgres.MigrateOptions{})
//	outbox, _ := postgres.NewOutbox(db, postgres.OutboxOptions{})
//	idem, _ := postgres.NewIdempotency(db, postgres.IdempotencyOptions{})
//	uow, _ := postgres.NewUnitOfWork(db, buildTxPorts, postgres.UnitOfWorkOptions{})
//
// Connections. POSTGRES_DB_URL is a postgres:// or postgresql:// URL; TLS
// follows its sslmode. Boot errors name the variable and the host, never the
// password. bun renders arguments into the SQL text, so Open uses pgx's
// simple protocol (one round trip per statement, no statement cache to
// churn) unless the URL sets default_query_exec_mode.
//
// Claims. Concurrent claimers never wait for each other: the claim is one
// UPDATE ... WHERE id = ANY(ARRAY(SELECT ... FOR UPDATE SKIP LOCKED))
// RETURNING, whose subquery reads the partial claim index in claim order and
// runs exactly once (see ClaimQuery). Complete is one DELETE ... RETURNING.
//
// Notifications. Enqueue calls pg_notify(NotifyChannel(table), topics) once
// per call in the caller's transaction, so the notification is delivered at
// commit and never after a rollback. Outbox.Notifications, the
// ports.OutboxNotifier a relay finds by type assertion, LISTENs on a
// dedicated connection (settings copied from the pool, or
// OutboxOptions.Listen.URL), reconnects with backoff and wakes the relay so
// it can claim at once instead of polling.
//
// Schemas. Table names may be schema-qualified ("app.outbox_messages"; the
// schema must exist); indexes live in the table's schema. Unqualified names
// resolve through the connection's search_path, which a URL parameter sets
// for every pooled connection: postgres://.../app?search_path=tenant_a.
//
// Storage. As in every dialect, timestamps are fixed-width ISO-8601 TEXT;
// here with COLLATE "C", so that their order and the order of IDs are byte
// order whatever the database's locale.
//
// Errors. TranslateError classifies SQLSTATEs: 40001 and 40P01 are
// retryable (the unit of work re-runs the transaction), 55P03 is
// ports.ErrLockNotAvailable, 23505 ports.ErrUniqueViolation.
package postgres
