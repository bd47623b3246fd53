// Package httpidempotency is an HTTP middleware for the Idempotency-Key
// request header (IETF draft-ietf-httpapi-idempotency-key-header, as
// practised by Stripe) on top of a ports.Idempotency store.
//
// A client that may retry a non-idempotent request (POST, PATCH) sends a
// unique key with it:
//
//	POST /todos HTTP/1.1
//	Idempotency-Key: 4f1c2a7e-2f47-4c2b-9d8f-0a3c6f1e9b10
//
// The middleware runs the request at most once per key and answers every
// retry with the first response:
//
//   - First request: the key is reserved, the handler runs, and its response
//     (status, a safe allow-list of headers, body) is stored.
//   - Retry after the first completed: the stored response is replayed with
//     "Idempotent-Replayed: true"; the handler does not run.
//   - Retry while the first is still running: 409 Conflict (with
//     Retry-After).
//   - Same key, different request (method, path, query or body differ):
//     422 Unprocessable Content. JSON bodies are compared as canonical
//     JSON (Fingerprint): {"title":"a"} and { "title": "a" } are the same
//     request; other bodies byte for byte (Options.Fingerprint to change).
//   - Malformed key (empty, longer than 255 characters, not printable
//     ASCII, sent twice): 400 Bad Request. A missing key is 400 only when
//     Options.Required is set; otherwise the request passes through.
//   - 2xx and 3xx responses are stored and replayed. A 4xx or 5xx response
//     is not stored: the reservation is released (Fail, which deletes it),
//     so a rejected request leaves no record behind and a retry — corrected
//     or not — runs the handler again, as Stripe does for requests that
//     fail validation. A 4xx the handler completed in its transaction
//     (Complete: a business outcome, such as a declined payment) is kept
//     and replayed; Options.StoreClientErrors stores every 4xx.
//   - The store busy or unreachable (Options.Unavailable, by default
//     IsUnavailable: a retryable conflict or a connection failure): 503
//     with Retry-After; the handler does not run.
//
// Keys are scoped per caller when Options.Scope returns one (for example the
// authenticated user and tenant), so two callers never see each other's
// results; the namespace (Options.Namespace) separates APIs sharing a store.
//
// # Where the record commits
//
// The reservation is made with Options.Store before the handler runs, in its
// own statement: it is committed at once, which is what lets a concurrent
// retry see "in progress" (409) instead of waiting on a database lock.
//
// Completing the reservation — storing the response — can happen in one of
// two places:
//
//  1. After the handler, by the middleware, through Options.Store (a store on
//     the root database). This needs nothing from the handler, but the record
//     commits separately from the handler's own transaction: if the process
//     dies after the handler's transaction committed and before the record is
//     completed, the reservation stays in progress until its lease expires,
//     and a retry after that runs the handler a second time.
//
//  2. Inside the handler's transaction, by the handler, with Complete and a
//     store bound to that transaction (wharf.Tx.Idempotency). The
//     idempotency record, the business rows and the outbox events then commit
//     or roll back together: a crash at any point either left nothing (the
//     retry takes the expired reservation over and runs again, correctly) or
//     left the key completed with its response (the retry replays it). Because
//     the completion is fenced on the reservation's token, a handler whose
//     lease expired and whose key was taken over by a retry fails to
//     complete, and its transaction rolls back instead of writing twice.
//     When the handler's transaction rolls back after Complete and the
//     handler answers something else, the middleware treats that answer as
//     in pattern 1 (stores it, or releases the key for a 4xx or 5xx), so
//     the key is not left reserved until its lease expires.
//
// Pattern 2 is the one to use for writes; pattern 1 is the fallback for
// handlers that do not call Complete:
//
//	err := uow.Transaction(ctx, func(ctx context.Context, tx TxPorts) error {
//		todo, err := createTodo(ctx, tx, title)
//		if err != nil {
//			return err
//		}
//		if resp, err = httpidempotency.JSON(http.StatusCreated, todo); err != nil {
//			return err
//		}
//		return httpidempotency.Complete(ctx, tx.Idempotency, resp) // no-op without a key
//	})
//	if err != nil { ... answer 4xx/5xx ... }
//	resp.Write(w)
//
// A handler that completes in its transaction must answer with the response
// it completed, and with a 5xx when that transaction fails (the middleware
// then releases the reservation, unless it was committed after all).
//
// # Which routes
//
// Wrap the handlers of the routes that take a key, not a whole mux with a
// catch-all route: a key sent to an unknown route or with a method the
// route does not serve would otherwise reach the middleware, be reserved
// and, if the 404 or 405 were stored, answer a later correct request with
// it. With Go 1.22 patterns:
//
//	mux.Handle("POST /todos", idem.Wrap(http.HandlerFunc(createTodo)))
//	mux.Handle("POST /todos/{id}/complete", idem.Wrap(http.HandlerFunc(completeTodo)))
//
// # Buffering and limits
//
// For a request that carries a key the middleware reads the whole body (at
// most Options.MaxBodyBytes, else 413) to fingerprint it, and hands the
// handler a re-readable copy; it buffers the handler's response so it can
// store it before the client sees it. Use it on JSON write endpoints, not on
// streaming ones. Requests with other methods, or without a key, are passed
// through untouched.
package httpidempotency
