// Package sqlite implements wharf's ports on SQLite through uptrace/bun and
// modernc.org/sqlite (pure Go, no cgo).
//
// The same names exist in providers/postgres and providers/mysql, so moving
// between databases changes one import and one environment variable:
//
//	app.Register(sqlite.NewProvider(sqlite.Options{}))          // SQLITE_DB_URL=file:app.db
//	db, _ := core.Port[*bun.DB](app, "db")
//	_ = sqlite.Migrate(ctx, db, sqlite.MigrateOptions{})
//	outbox, _ := sqlite.NewOutbox(db, sqlite.OutboxOptions{})
//	idem, _ := sqlite.NewIdempotency(db, sqlite.IdempotencyOptions{})
//	uow, _ := sqlite.NewUnitOfWork(db, buildTxPorts, sqlite.UnitOfWorkOptions{})
//
// SQLite runs one writer at a time. Open sets busy_timeout, WAL journaling,
// foreign keys and IMMEDIATE transactions (unless the URL sets them), so
// writers queue instead of failing; SQLITE_BUSY that still escapes is
// retryable. The claim is one UPDATE ... RETURNING statement forced onto the
// claim index with INDEXED BY; SQLite needs no SKIP LOCKED because the write
// lock already serialises claimers.
//
// # Write gate
//
// SQLite's busy handler is not a queue: a writer that finds the database
// locked sleeps 1, 2, 5, 10 … ms and tries again, and a writer that keeps
// the lock busy with back-to-back transactions can starve it (a relay's
// claims and its completions, from two connections, lost most of their
// time there). So everything this package builds on one *sql.DB queues in
// Go instead, first come first served, through one write gate per database:
//
//   - the outbox's writes (Enqueue, Claim, Complete, Release, Retry,
//     DeadLetter, Extend, Requeue, Purge) and the idempotency store's
//     (Reserve, Complete, Fail) when they run on the *bun.DB itself;
//   - every transaction of a UnitOfWork, from BEGIN to COMMIT or ROLLBACK.
//
// An outbox or store bound to a transaction (WithDB(tx)) does not take the
// gate: its transaction's writer is already admitted (a unit of work's holds
// the gate; any other waited in SQLite). A call on the *bun.DB made inside a
// unit of work with the context of its function does not wait for the gate
// its own transaction holds either; it meets that transaction in SQLite's
// busy handler, as it would without the gate. Reads (Stats, List) never
// wait.
//
// Transactions and statements that the application runs itself (db.RunInTx,
// db.ExecContext) do not pass the gate; they and the gated writers still
// take turns through busy_timeout as before, so keep the application's own
// writes inside a UnitOfWork where throughput matters. A wait for the gate
// ends with the context, and after DefaultBusyTimeoutMS the waiter goes on
// to SQLite's busy handler rather than wait longer: the gate never turns a
// wait that SQLite would end into one that does not.
package sqlite
