package ports

import (
	"context"
	"encoding/json"
	"time"
)

// OutboxStats counts the messages in an outbox at one moment.
type OutboxStats struct {
	// Ready messages can be claimed now.
	Ready int64
	// Scheduled messages wait for their AvailableAt (first try or retry).
	Scheduled int64
	// Leased messages are held by a live claim.
	Leased int64
	// Dead messages are dead letters.
	Dead int64
	// OldestReady is the AvailableAt of the oldest ready message (zero when
	// none): how far behind the workers are.
	OldestReady time.Time
}

// Pending counts the messages still to be delivered: ready, scheduled and
// leased. Zero means the outbox has no work left (dead letters aside).
func (s OutboxStats) Pending() int64 { return s.Ready + s.Scheduled + s.Leased }

// Total counts every message in the outbox, dead letters included. Zero
// means the outbox is empty.
func (s OutboxStats) Total() int64 { return s.Pending() + s.Dead }

// OutboxFilter selects messages for OutboxAdmin.List.
type OutboxFilter struct {
	// Status, when set, selects pending or dead messages.
	Status MessageStatus
	// Topic and Key, when set, must match exactly.
	Topic string
	Key   string
	// ID, when set, selects the message with this ID (none when it is not
	// in the outbox).
	ID string
	// AfterID continues a listing after this ID (keyset pagination).
	AfterID string
	// Limit bounds the result; zero means 100, at most 1000.
	Limit int
}

// OutboxRecord is a stored message as an operator sees it.
type OutboxRecord struct {
	ID          string
	Kind        MessageKind
	Topic       string
	Key         string
	Payload     json.RawMessage
	Headers     map[string]string
	Status      MessageStatus
	Attempts    int
	MaxAttempts int
	AvailableAt time.Time
	// LockedUntil is zero when the message is not leased.
	LockedUntil time.Time
	LastError   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// OutboxAdmin is the optional operator interface of an outbox, found by type
// assertion on an Outbox.
type OutboxAdmin interface {
	// Stats counts messages by state.
	Stats(ctx context.Context) (OutboxStats, error)
	// List returns messages in ID order.
	List(ctx context.Context, filter OutboxFilter) ([]OutboxRecord, error)
	// Requeue turns the named dead letters (all dead letters when ids is
	// empty) back into pending messages, claimable now, with attempts reset
	// and their last error kept. It returns how many were requeued.
	Requeue(ctx context.Context, ids ...string) (int64, error)
	// Purge deletes dead letters last updated before olderThan and returns how
	// many, in bounded batches of one short statement each (never one long
	// transaction, unless the outbox is bound to one); a cancelled ctx
	// stops it between batches with the count so far. (Delivered messages
	// leave the outbox at completion.)
	Purge(ctx context.Context, olderThan time.Time) (int64, error)
}
