// Package core is wharf's kernel. It depends on ports only (never on a
// database library or a provider) and holds what every provider and
// application shares: the app/provider registry, event recording and typed
// event definitions, RunIdempotently, the relay that delivers the outbox
// (Handlers, NewRelay with Drain and Run, Permanent and RetryAfter outcomes,
// EffectivelyOnce consumers), backoff policies, fixed-width ISO-8601
// timestamps, identifier validation and UUIDv7 IDs.
package core
