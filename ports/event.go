package ports

import (
	"context"
	"encoding/json"
	"time"
)

// Event is a fact that happened in the domain, recorded inside a transaction
// and delivered after it commits.
type Event struct {
	// ID identifies the event; a recorder assigns a UUIDv7 when it is empty.
	// Through an outbox it becomes the message ID, which orders the events
	// of one ordering key: a caller-chosen ID must increase in recording
	// order (see OutboxMessage.ID).
	ID string
	// Name is the event's type, e.g. "todo.created". It must not be empty;
	// when the event travels through an outbox it becomes the message topic.
	Name string
	// Payload is the event's JSON body. It must be valid JSON.
	Payload json.RawMessage
	// Headers carry metadata (trace ids, tenant, ...). Optional.
	Headers map[string]string
	// OccurredAt is when the event happened; a recorder sets the current time
	// when it is zero.
	OccurredAt time.Time
}

// EventRecorder records events inside a transaction. Recorded events share
// the transaction's fate: they are delivered only if it commits.
type EventRecorder interface {
	// Record validates and records events. An invalid event (empty Name,
	// payload that is not JSON) is an error matching ErrInvalidArgument and
	// records nothing of the batch.
	Record(ctx context.Context, events ...Event) error
}

// EventBus publishes events to in-process or external subscribers. A unit of
// work calls it after commit; a relay may call it for outbox messages of kind
// event.
type EventBus interface {
	// Publish delivers events in order. An error means some events may not have
	// been delivered; callers that need guarantees use the outbox.
	Publish(ctx context.Context, events ...Event) error
}

// EventRecorderFunc adapts a function to EventRecorder.
type EventRecorderFunc func(ctx context.Context, events ...Event) error

// Record calls f.
func (f EventRecorderFunc) Record(ctx context.Context, events ...Event) error {
	return f(ctx, events...)
}

// EventBusFunc adapts a function to EventBus.
type EventBusFunc func(ctx context.Context, events ...Event) error

// Publish calls f.
func (f EventBusFunc) Publish(ctx context.Context, events ...Event) error {
	return f(ctx, events...)
}
