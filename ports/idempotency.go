package ports

import (
	"context"
	"encoding/json"
	"time"
)

// IdempotencyKey names one idempotent operation: a key chosen by the client
// (for example an Idempotency-Key header), within a namespace chosen by the
// application (for example "orders.create"), within a scope (for example
// {"tenant": "t1", "user": "u7"}). Scope maps are canonicalised, so the
// order of their entries never matters.
//
// Namespace and Key must not be empty; Namespace, Key and the canonical scope
// are at most 255 characters each. Longer values are rejected, never
// truncated.
type IdempotencyKey struct {
	Namespace string
	Key       string
	Scope     map[string]string
}

// ReserveRequest asks to reserve an idempotency key.
type ReserveRequest struct {
	IdempotencyKey
	// Fingerprint identifies the request's content (for example a hash of
	// method, path and body). Reusing a key with a different fingerprint is
	// refused. Required, at most 255 characters.
	Fingerprint string
	// Lease is how long the reservation is held before another caller may take
	// it over; zero means the store's default.
	Lease time.Duration
	// TTL is how long the record (and the stored result) is kept; zero means
	// the store's default.
	TTL time.Duration
}

// ReserveStatus is the outcome of Reserve.
type ReserveStatus int

const (
	// Reserved: the caller holds the key and must Complete or Fail it.
	Reserved ReserveStatus = iota + 1
	// Replay: the operation already completed; Result holds its stored result.
	Replay
	// InProgress: another caller holds a live reservation for the key.
	InProgress
	// FingerprintMismatch: the key was used with a different request.
	FingerprintMismatch
)

// String returns the status name.
func (s ReserveStatus) String() string {
	switch s {
	case Reserved:
		return "reserved"
	case Replay:
		return "replay"
	case InProgress:
		return "in_progress"
	case FingerprintMismatch:
		return "fingerprint_mismatch"
	default:
		return "unknown"
	}
}

// Reservation is the outcome of Reserve and, when Status is Reserved, the
// handle that Complete and Fail take.
type Reservation struct {
	Status    ReserveStatus
	Namespace string
	Key       string
	// ScopeKey is the canonical form of the scope.
	ScopeKey string
	// Token fences Complete and Fail to this reservation; it changes when an
	// abandoned reservation is taken over.
	Token string
	// Result is the stored result when Status is Replay.
	Result json.RawMessage
	// TakenOver is true when Reserved took over an abandoned reservation whose
	// lease had expired.
	TakenOver bool
	// LockedUntil is when the reservation's lease ends (Reserved, InProgress).
	LockedUntil time.Time
	// ExpiresAt is when the record expires.
	ExpiresAt time.Time
}

// Idempotency stores idempotency records so a retried request runs its
// operation at most once and replays its result. Bind it to a transaction
// (the providers' transaction-scoped ports, e.g. wharf.Tx) to commit the record with the business write.
type Idempotency interface {
	// Reserve reserves the key for this request. An expired record is removed
	// first; an in-progress record whose lease expired is taken over when the
	// fingerprint matches. Concurrent Reserve calls for one key yield exactly
	// one Reserved; the others see InProgress (or Replay once it completed).
	// Invalid input matches ErrInvalidArgument.
	Reserve(ctx context.Context, req ReserveRequest) (Reservation, error)

	// Complete stores result (valid JSON) for a Reserved reservation and
	// marks the key completed. If no in-progress record with the
	// reservation's token exists (never reserved, already completed or
	// failed, taken over), it changes nothing and returns an
	// *IdempotencyMutationError.
	Complete(ctx context.Context, r Reservation, result json.RawMessage) error

	// Fail releases a Reserved reservation so the key can be reserved again.
	// It fails like Complete when the reservation is no longer held.
	Fail(ctx context.Context, r Reservation) error
}
