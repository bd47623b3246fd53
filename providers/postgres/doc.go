// Package postgres is wharf's PostgreSQL provider, through uptrace/bun
// (pgdialect) and pgx v5's database/sql driver. Importing it registers the
// postgres:// and postgresql:// URLs with wharf.Open.
//
//	drv, err := postgres.Open(ctx, "postgres://app:secret@db:5432/app?sslmode=verify-full", wharf.Options{})
//	err = drv.Migrate(ctx)
//	uow, err := wharf.NewUnitOfWork(drv, buildTxPorts, wharf.UnitOfWorkOptions{})
//	r, err := relay.New(drv.Outbox(), handlers, relay.Options{})
//
// NewProvider does the same from POSTGRES_DB_URL inside a core.App.
//
// # Connection
//
// The URL is a postgres:// or postgresql:// URL; TLS follows its sslmode,
// and query parameters pgx does not know are sent as run-time parameters
// (search_path=app, application_name=api). Errors name the host and never
// the password. bun renders arguments into the SQL text, so Open uses
// pgx's simple protocol (one round trip per statement, no statement cache
// to churn) unless the URL sets default_query_exec_mode.
//
// # Notifications
//
// Every Enqueue sends pg_notify(NotifyChannel(table), topics) in the same
// statement, delivered at commit and never after a rollback. A relay's
// Notifications LISTENs on a dedicated connection per driver (settings
// copied from the pool, or wharf.Options.Listen.URL), reconnects with
// backoff, and wakes relays in every process at once instead of letting
// them poll. Behind a transaction-pooling proxy (PgBouncer) LISTEN does not
// work: point Options.Listen.URL at the server itself.
//
// # Schemas
//
// Table names may be schema-qualified ("app.outbox_messages"; the schema
// must exist); indexes live in the table's schema. Unqualified names
// resolve through the connection's search_path.
//
// # Isolation
//
// Reserve inserts with ON CONFLICT DO NOTHING and reads the winner with a
// plain SELECT. Under READ COMMITTED (the default) the INSERT waits for a
// concurrent inserter and the SELECT then sees its record. Under
// REPEATABLE READ or SERIALIZABLE PostgreSQL raises a serialization
// failure (40001, retryable) when the conflicting record is not in the
// snapshot, and the unit of work runs the transaction again.
//
// # How it works
//
// The claim is one UPDATE ... WHERE id = ANY(ARRAY(SELECT ... FOR UPDATE
// SKIP LOCKED)) RETURNING, reading the partial claim index in claim order;
// Complete and Release are one statement each with their lists as text[]
// values; Enqueue writes a batch as one INSERT ... SELECT FROM unnest(...)
// of one array per column. TranslateError classifies SQLSTATEs: 40001 and
// 40P01 are retryable, 55P03 is ports.ErrLockNotAvailable, 23505
// ports.ErrUniqueViolation; 53300, 57P03 and connections that failed before
// anything was sent are retryable ports.ErrUnavailable. docs/architecture.md has the details.
package postgres
