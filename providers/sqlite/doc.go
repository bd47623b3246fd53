// Package sqlite is wharf's SQLite provider, through uptrace/bun and
// modernc.org/sqlite (pure Go, no cgo). Importing it registers the file:,
// sqlite: and :memory: URLs with wharf.Open.
//
//	drv, err := sqlite.Open(ctx, "file:app.db", wharf.Options{}) // or wharf.Open with a blank import
//	err = drv.Migrate(ctx)
//	uow, err := wharf.NewUnitOfWork(drv, buildTxPorts, wharf.UnitOfWorkOptions{})
//	r, err := relay.New(drv.Outbox(), handlers, relay.Options{})
//
// NewProvider does the same from SQLITE_DB_URL inside a core.App.
//
// # Connection
//
// Open adds busy_timeout, WAL journaling, foreign keys and IMMEDIATE
// transactions unless the URL sets them (see DSN), so writers queue
// instead of failing; SQLITE_BUSY that still escapes is retryable. An
// in-memory database keeps a single connection.
//
// # One writer at a time
//
// SQLite runs one writer at a time, and its busy handler is not a queue:
// a writer that finds the database locked sleeps and tries again, and can
// starve behind one that never pauses. So everything wharf builds on one
// pool queues in Go instead, first come first served, through one write
// gate per database: the outbox's and the idempotency store's writes on
// the pool, and every transaction of a unit of work from BEGIN to COMMIT.
// Ports bound to a transaction (Tx) do not take the gate: their
// transaction already holds it. The application's own transactions
// outside a unit of work do not pass the gate; they still take turns with
// wharf's through busy_timeout. A wait for the gate ends with the context,
// and after DefaultBusyTimeoutMS the waiter goes on to SQLite's busy
// handler rather than wait longer.
//
// # How it works
//
// The claim is one UPDATE ... WHERE id IN (eligible) RETURNING statement
// forced onto the claim index with INDEXED BY; SQLite needs no SKIP
// LOCKED because its write lock serialises claimers. Complete and Release
// are one DELETE or UPDATE ... RETURNING each. docs/architecture.md has the
// storage rules all dialects share.
package sqlite
