// Package core is wharf's kernel. It depends on ports and wharf's internal
// validation only (never on a database library or a provider) and holds
// what applications share
// whatever their database: the app/provider registry (NewApp, Register,
// Start, Stop, Port), event recording through an outbox and typed event
// definitions, RunIdempotently and Fingerprint, UUIDv7 IDs, and the
// fixed-width ISO-8601 time format every provider stores.
//
// The relay that delivers the outbox is in core/relay; the database
// drivers are in the module's root package (wharf) and in providers/.
package core
