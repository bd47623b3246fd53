package ports

import (
	"context"
	"encoding/json"
	"time"
)

// IdempotencyRecordStatus is the state of a stored idempotency record.
type IdempotencyRecordStatus string

// Record states.
const (
	// IdempotencyInProgress: reserved, not yet completed.
	IdempotencyInProgress IdempotencyRecordStatus = "in_progress"
	// IdempotencyCompleted: completed; a retry replays its result.
	IdempotencyCompleted IdempotencyRecordStatus = "completed"
)

// IdempotencyStats counts the records of an idempotency store at one
// moment. Every record is in exactly one count.
type IdempotencyStats struct {
	// InProgress records are reserved under a live lease.
	InProgress int64
	// Abandoned records are reserved under a lease that expired: the next
	// Reserve of their key takes them over.
	Abandoned int64
	// Completed records hold a result that a retry replays.
	Completed int64
	// Expired records are past their ExpiresAt, whatever their status:
	// Reserve treats their key as new, and Purge deletes them.
	Expired int64
	// OldestExpiry is the ExpiresAt of the longest-expired record (zero
	// when none is expired): how far behind the purge is.
	OldestExpiry time.Time
}

// Total counts every record.
func (s IdempotencyStats) Total() int64 { return s.InProgress + s.Abandoned + s.Completed + s.Expired }

// IdempotencyFilter selects records for IdempotencyAdmin.List. Zero fields
// select everything.
type IdempotencyFilter struct {
	// Namespace and Key, when set, must match exactly.
	Namespace string
	Key       string
	// Status, when set, selects in-progress or completed records.
	Status IdempotencyRecordStatus
	// ExpiredAt, when set, selects the records already expired at that
	// instant (ExpiresAt at or before it): pass now for the expired ones.
	ExpiredAt time.Time
	// LiveAt, when set, selects the records not yet expired at that
	// instant (ExpiresAt after it).
	LiveAt time.Time
	// After continues a listing after the record whose Cursor it is
	// (keyset pagination).
	After string
	// Limit bounds the result; zero means 100, at most 1000.
	Limit int
}

// IdempotencyRecord is a stored record as an operator sees it.
type IdempotencyRecord struct {
	// ID identifies the record: a hash of its namespace, key and scope.
	ID        string
	Namespace string
	Key       string
	// ScopeKey is the canonical scope ("" for none).
	ScopeKey    string
	Fingerprint string
	Status      IdempotencyRecordStatus
	// Result is the stored result of a completed record.
	Result json.RawMessage
	// LockedUntil is when the reservation's lease ends (zero once
	// completed).
	LockedUntil time.Time
	ExpiresAt   time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Cursor continues a listing after this record (IdempotencyFilter.After).
	Cursor string
}

// IdempotencyAdmin is the optional operator interface of an idempotency
// store, found by type assertion on an Idempotency (wharf's drivers
// implement it).
type IdempotencyAdmin interface {
	// Stats counts records by state.
	Stats(ctx context.Context) (IdempotencyStats, error)
	// List returns records in expiry order (ExpiresAt, then ID). Filters
	// other than the expiry bounds are checked on the rows the expiry
	// index yields: on a large table, narrow by expiry too.
	List(ctx context.Context, filter IdempotencyFilter) ([]IdempotencyRecord, error)
	// Purge deletes the records expired at expiredBefore (ExpiresAt at or
	// before it), oldest first, in bounded batches of one short statement
	// each (never one long transaction, unless the store is bound to one),
	// and returns how many it deleted. A cancelled ctx stops it between
	// batches with the count so far. Purging an expired record changes no
	// outcome: Reserve already treats its key as new. An expiredBefore
	// after now is an error matching ErrInvalidArgument: records that have
	// not expired are live.
	Purge(ctx context.Context, expiredBefore time.Time) (int64, error)
}
