// Package ports defines the interfaces and value types that wharf's use cases
// depend on: a unit of work, events, a transactional outbox and an
// idempotency store.
//
// The package imports nothing of wharf and no database library. Providers
// (providers/sqlite, providers/postgres, providers/mysql) implement these
// ports on a real database; the conformance package checks that they all
// behave the same.
package ports
