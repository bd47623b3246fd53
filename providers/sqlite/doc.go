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
package sqlite
