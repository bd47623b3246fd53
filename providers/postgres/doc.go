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
// Statement caching. With default_query_exec_mode=cache_statement (or
// cache_describe) wharf's own statements still reach the server with their
// values in the text, all different, so each is prepared once, planned for
// its values and never reused: the cache costs a round trip and buys
// nothing. Statements that do send bind parameters, such as a hand-written
// copy of the claim with $1..$n, or queue queries of the application, can be
// given a generic plan after five executions, chosen without knowing the
// LIMIT or the clock; for those set plan_cache_mode=force_custom_plan, which
// the URL passes to every connection as a run-time parameter
// (postgres://.../app?default_query_exec_mode=cache_statement&plan_cache_mode=force_custom_plan).
// Open does not set it for you: it would change the plans of the
// application's own prepared statements and would not affect wharf's.
//
// Claims. Concurrent claimers never wait for each other: the claim is one
// UPDATE ... WHERE id = ANY(ARRAY(SELECT ... FOR UPDATE SKIP LOCKED))
// RETURNING, whose subquery reads the partial claim index in claim order,
// stopping after n eligible rows, and runs exactly once (see ClaimQuery).
// The subquery carries a row-count hint so that it keeps this plan on a
// table that has never been analyzed (just after Migrate or a bulk load),
// where PostgreSQL's default estimates would otherwise sort the whole
// backlog on every claim. Complete (and Release) is one statement: its ID and
// token lists travel as two text[] values, and it returns only the claims it
// could not apply, so the usual batch, all held, comes back empty. Enqueue
// writes a batch of messages as one INSERT ... SELECT * FROM unnest(...) with
// one array per column, which the server parses far faster than a VALUES
// list of the same rows.
//
// Notifications. Enqueue calls pg_notify(NotifyChannel(table), topics) once
// per call in the caller's transaction, so the notification is delivered at
// commit and never after a rollback. Outbox.Notifications, the
// ports.OutboxNotifier a relay finds by type assertion, LISTENs on a
// dedicated connection (settings copied from the pool, or
// OutboxOptions.Listen.URL), one per outbox however many channels it hands
// out (WithDB copies included), reconnects with backoff and wakes the relay
// so it can claim at once instead of polling.
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
