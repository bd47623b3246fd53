// Package core is wharf's kernel. It depends on ports only (never on a
// database library or a provider) and holds what every provider and
// application shares: the app/provider registry, event recording and typed
// event definitions, RunIdempotently, backoff policies, fixed-width ISO-8601
// timestamps, identifier validation and UUIDv7 IDs.
package core
