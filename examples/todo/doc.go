// Command todo is wharf's example application: a JSON HTTP API for todos
// with a unit of work, a transactional outbox, an in-process relay and
// idempotent writes, on SQLite, PostgreSQL or MySQL/MariaDB.
//
//	go run ./examples/todo            # or: make run
//	go run ./examples/todo -h
//
// It listens on 127.0.0.1:8080 (-addr or TODO_ADDR to change), logs with
// log/slog (-log-level or TODO_LOG_LEVEL), and shuts down gracefully on
// SIGINT or SIGTERM: in-flight requests finish (http.Server.Shutdown), the
// relay finishes or releases its messages, and the providers stop.
//
// # Choosing the database
//
//  1. TODO_DB=sqlite|postgres|mysql, if set, picks the database; its URL
//     variable must then be set — except SQLite, which defaults to
//     file:todo.db.
//  2. Otherwise the one URL variable that is set picks it:
//     POSTGRES_DB_URL (postgres://user:pass@host:5432/db?sslmode=disable),
//     MYSQL_DB_URL (mysql://user:pass@host:3306/db) or SQLITE_DB_URL
//     (file:path.db). If several are set, TODO_DB must choose.
//  3. Otherwise SQLite at file:todo.db in the working directory, created on
//     the first start.
//
// The tables (wharf's outbox and idempotency records, the app's todos and
// todo_activity) are created on every start if missing.
//
// # Architecture
//
//	internal/domain   Todo and its rules; the TodoRepository port. Standard library only.
//	internal/app      the use cases (Service), typed events (core.DefineEvent),
//	                  TxPorts, the ActivityRepository port and the activity projection.
//	                  Depends on the domain and wharf's ports/core: never bun, SQL or HTTP.
//	internal/infra    bun repositories (on bun.IDB: the root DB or a transaction), the
//	                  schema per dialect, and the app-database provider (core.Provider).
//	internal/httpapi  the HTTP adapter: routing, JSON, errors, cursors, and the
//	                  Idempotency-Key middleware (package httpidempotency).
//	server.go         the composition root: newServer wires it all; main.go runs it.
//
// Boot (newServer): the wharf database provider (sqlite/postgres/mysql
// NewProvider) installs the *bun.DB as port "db"; the app-database provider,
// registered after it, looks that port up, migrates, and installs the unit
// of work, the outbox, the idempotency store and the repositories. Each
// transaction gets fresh TxPorts: repositories on the transaction, an event
// recorder writing to the outbox in the transaction
// (core.NewOutboxEventRecorder(outbox.WithDB(tx))) and the idempotency
// store bound to the transaction.
//
// A write (POST /todos): the middleware reserves the Idempotency-Key (its own
// short commit, so a concurrent retry sees 409); the handler opens one
// transaction in which the use case inserts the todo and records
// todo.created in the outbox, and the handler completes the key with the
// response — key, row and event commit together. The relay claims the event
// and the projection writes the activity entry (GET /activity), once: the
// entry's ID is the event's ID.
package main
