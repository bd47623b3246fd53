package core

import "github.com/wharf-go/wharf/internal/check"

// NewID returns a new UUIDv7 (RFC 9562) in canonical text form, as used for
// outbox message and event IDs. IDs are time-ordered, and strictly
// increasing within a process: github.com/google/uuid fills the 12 bits
// after the millisecond timestamp with a sub-millisecond counter and never
// hands out a value at or below the last one.
func NewID() string {
	return check.NewID()
}
