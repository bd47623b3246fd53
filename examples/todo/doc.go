// Command todo is wharf's example application: a JSON HTTP API for todos
// with a unit of work, a transactional outbox, an in-process relay and
// idempotent writes, on SQLite, PostgreSQL or MySQL/MariaDB.
//
//	make run                          # builds bin/todo, then runs it
//	cd examples/todo && go run . -h    # a module of its own
//
// It listens on 127.0.0.1:8080 (-addr or TODO_ADDR to change), serves
// Prometheus metrics at /metrics (-metrics=false to stop), exports traces per
// OTEL_TRACES_EXPORTER (none, console or otlp; see telemetry.go), logs every
// SQL statement with -query-log=on (TODO_QUERY_LOG), logs with
// log/slog (-log-level or TODO_LOG_LEVEL), and shuts down gracefully on
// SIGINT or SIGTERM: in-flight requests finish (http.Server.Shutdown), the
// relay finishes or releases its messages, and the database is closed.
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
// The URL's scheme picks the dialect (wharf.Open); a URL that is not of its
// variable's dialect is refused at start.
//
// The tables (wharf's outbox and idempotency records, the app's todos and
// todo_activity) are created on every start if missing.
//
// # Architecture
//
//	internal/domain   Todo and its rules; the TodoRepository port. Standard library only.
//	internal/app      the use cases (Service), typed events (core.DefineEvent) and their
//	                  ordering key, TxPorts, the ActivityRepository port and the activity
//	                  projection. Depends on the domain and wharf's ports, core and
//	                  core/relay: never bun, SQL or HTTP.
//	internal/infra    bun repositories (on bun.IDB: the pool or a transaction) and the
//	                  DDL of the app's tables per dialect.
//	internal/httpapi  the HTTP adapter: routing, the access log, JSON, errors, cursors,
//	                  and the Idempotency-Key middleware (package httpidempotency).
//	server.go         the composition root: newServer wires it all; main.go runs it.
//	telemetry.go      traces (OTEL_TRACES_EXPORTER), /metrics, otelhttp and otelwharf.
//
// Boot (newServer, one plain function): wharf.Open opens the driver of the
// configured URL (the provider packages are imported blank so that every
// scheme is known); drv.Migrate creates wharf's tables and infra.Migrate the
// app's, with the DDL of drv.Dialect() — the app's only dialect-specific
// code. wharf.NewUnitOfWork builds fresh TxPorts for each transaction from
// the wharf.Tx: repositories on the transaction, tx.Events (events recorded
// into the outbox in the transaction, keyed by app.OrderingKey) and
// tx.Idempotency (the idempotency store bound to the transaction). Then come
// the use cases, the HTTP handler (its middleware reserves keys in
// drv.Idempotency()) and the relay on drv.Outbox(). server.Close stops the
// relay and closes the driver. No core.App: one resource with a life cycle
// does not need a registry of ports looked up by name.
//
// A request passes the access log (a request ID, one line per request, no
// bodies or keys), the router (JSON 404; 405 with Allow) and, on the two
// write routes, the Content-Type check (415 unless application/json) and
// the Idempotency-Key middleware, which therefore never reserves a key for
// a route the API does not serve. Bodies must be valid UTF-8 without lone
// surrogate escapes (checked before encoding/json, which would replace them
// silently); titles refuse bidirectional controls. A database that is busy
// or unreachable answers 503 with Retry-After. A rejected request (4xx)
// writes nothing, not even an idempotency record; idempotency fingerprints
// compare JSON bodies as canonical JSON.
//
// A write (POST /todos): the middleware reserves the Idempotency-Key (its own
// short commit, so a concurrent retry sees 409); the handler opens one
// transaction in which the use case inserts the todo and records
// todo.created in the outbox, and the handler completes the key with the
// response — key, row and event commit together. The relay claims the event
// and the projection writes the activity entry (GET /activity), once: the
// entry's ID is the event's ID.
package main
