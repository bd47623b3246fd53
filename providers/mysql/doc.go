// Package mysql is wharf's MySQL 8.0+ and MariaDB 10.6+ provider, through
// uptrace/bun and go-sql-driver/mysql. Older servers lack FOR UPDATE SKIP
// LOCKED and are refused by Open. Importing it registers the mysql:// URL
// with wharf.Open.
//
//	drv, err := mysql.Open(ctx, "mysql://app:secret@db:3306/app", wharf.Options{})
//	err = drv.Migrate(ctx)
//	uow, err := wharf.NewUnitOfWork(drv, buildTxPorts, wharf.UnitOfWorkOptions{})
//	r, err := relay.New(drv.Outbox(), handlers, relay.Options{})
//
// NewProvider does the same from MYSQL_DB_URL inside a core.App. MySQL
// cannot notify other processes of new messages: relays in the producer's
// process wake at once, others poll (relay.Options.PollInterval).
//
// # Connection
//
// MYSQL_DB_URL is "mysql://user:password@host:port/database?params",
// translated by DSN into the driver's DSN: connect, read and write timeouts
// unless given, utf8mb4, parseTime off (timestamps are fixed-width ISO-8601
// text, compared as strings), multiStatements refused, and clientFoundRows
// always on, because MySQL otherwise reports the rows an UPDATE changed,
// not the rows it matched: renewing a lease to the value it already has
// would look like a lost claim. The session's sql_mode drops
// NO_BACKSLASH_ESCAPES (bun escapes backslashes in the values it
// interpolates). Errors name MYSQL_DB_URL and never contain the password.
//
// # SQL both servers accept
//
// Only statements MySQL 8.0 and MariaDB 10.6 both run are used. Indexes are
// declared inside CREATE TABLE IF NOT EXISTS (MySQL has no CREATE INDEX IF
// NOT EXISTS); there are no partial indexes; DELETE takes the
// multiple-table form when it needs an index hint. MySQL has no UPDATE or
// DELETE ... RETURNING (MariaDB has only DELETE RETURNING), LIMIT is not
// allowed in an IN (subquery), and an UPDATE cannot select from its own
// table, so the claim is three statements in one short READ COMMITTED
// transaction:
//
//  1. A plain read (no locks) of the first claimable row's available_at on
//     the claim index (status, available_at, id, locked_until). Leased rows
//     keep their place at the head of that index until they are completed,
//     and a locking scan would lock every one it passed until it commits.
//  2. SELECT up to Limit eligible messages from that available_at on, in
//     claim order, with FOR UPDATE SKIP LOCKED, forced onto the claim index.
//     Concurrent claimers pass over each other's rows; READ COMMITTED takes
//     no gap locks, so producers' INSERTs never wait for claimers.
//     locked_until is in the index so that leased rows are rejected by an
//     index condition without touching their clustered record. The start is
//     bound by available_at alone: a bound on (available_at, id) made
//     MariaDB scan many small ranges, in which SKIP LOCKED waited for rows
//     other claimers held (claimers deadlocked).
//  3. UPDATE those rows by primary key: token, lease, one more attempt, or
//     dead-lettering when the lease expired on the final attempt. MySQL
//     assigns left to right using values already assigned; every CASE reads
//     only attempts and max_attempts, and attempts is assigned last. The
//     claimed rows are derived from what step 2 read under its lock.
//
// A claim, Complete or Release on the root handle (*bun.DB) that the server
// chose as a deadlock victim (1213; all of it was rolled back) is run again,
// up to three times, before the deadlock reaches the caller. Bound to a
// transaction or any other handle, the deadlock is returned at once.
//
// Bound to a caller's transaction (Tx), the claim runs in a savepoint
// and the caller's isolation level applies: it cannot change inside a
// transaction. Per-key FIFO uses the key index (ordering_key, status, id).
// Complete deletes delivered rows (rewriting an indexed status instead
// caused deadlocks under REPEATABLE READ). Complete and Release first run
// their statement alone, fenced on the claims' IDs and tokens, in a short
// transaction that commits when the statement matched every claim (the
// usual case: three round trips). When it matched fewer, which claims were
// lost cannot be told from the row count: that transaction is rolled back,
// and a second one locks the claims still held, changes exactly those and
// reports the others in *ports.ClaimLostError.
//
// Every statement that takes a list of IDs is pinned to the primary key
// with FORCE INDEX (PRIMARY): when the IDs are most of the table's live
// rows, as at the tail of a drained outbox whose deleted rows still await
// purge, InnoDB prefers a full scan, and a locking full scan under
// REPEATABLE READ locks every record it passes.
//
// # Columns
//
// Outbox IDs, topics, ordering keys and claim tokens are VARBINARY and
// compare byte for byte, as in Go and SQLite (utf8mb4_bin would ignore
// trailing spaces). Idempotency keys are VARCHAR(255) utf8mb4_bin under a
// 64-character sha256 primary key; payloads, results and errors are
// LONGTEXT. Lengths are checked in Go before any write, so nothing is
// truncated even with strict mode off.
//
// # Idempotency
//
// Reserve inserts with INSERT IGNORE (ON DUPLICATE KEY UPDATE's no-op would
// count as a row under clientFoundRows) and reads an existing record with
// LOCK IN SHARE MODE, a locking read that sees the latest committed record
// even inside a REPEATABLE READ transaction whose snapshot is older. A
// shared lock, not FOR UPDATE: INSERT IGNORE already holds one on the
// duplicate, and transactions waiting on the same key would deadlock
// upgrading it.
//
// # Errors and retries
//
// TranslateError classifies the server's errors: deadlocks (1213), lock
// wait timeouts (1205, which roll back only the statement; the unit of work
// rolls back the whole transaction before it retries), too many
// connections (1040, 1203) and connections that failed before anything was
// sent (ports.ErrUnavailable) are retryable; duplicate keys (1062, 1586) are
// ports.ErrUniqueViolation; MySQL's NOWAIT failure (3572) is
// ports.ErrLockNotAvailable. MariaDB reports a NOWAIT failure as 1205.
//
// # Limits
//
// bun interpolates values into the SQL text, and its MySQL dialect drops
// NUL characters from strings. Enqueue inserts up to 500 messages per
// statement, so very large payloads can exceed the server's
// max_allowed_packet.
package mysql
