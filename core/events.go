package core

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/ports"
)

// HeaderOccurredAt is the outbox header that carries an event's OccurredAt
// (in TimeFormat) through the outbox.
const HeaderOccurredAt = "wharf-occurred-at"

// OutboxEventRecorderOptions configures an OutboxEventRecorder. The zero
// value means: no ordering key, the outbox's default MaxAttempts, the real
// clock.
type OutboxEventRecorderOptions struct {
	// Key, when set, derives each message's ordering key from its event
	// (for example the aggregate ID, so one aggregate's events stay in
	// order).
	Key func(ports.Event) string
	// MaxAttempts for the messages; zero means the outbox's default.
	MaxAttempts int
	// Now is the clock for OccurredAt defaults; nil means time.Now.
	Now func() time.Time
}

// OutboxEventRecorder is an EventRecorder that turns events into outbox
// messages of kind event (topic = event name, message ID = event ID). Bind
// its outbox to the transaction so the events commit with the business
// write.
type OutboxEventRecorder struct {
	outbox ports.Outbox
	opts   OutboxEventRecorderOptions
}

// NewOutboxEventRecorder returns a recorder writing to outbox. A nil outbox
// is an error matching ports.ErrInvalidArgument.
func NewOutboxEventRecorder(outbox ports.Outbox, opts OutboxEventRecorderOptions) (*OutboxEventRecorder, error) {
	if outbox == nil {
		return nil, check.Invalidf("core: new outbox event recorder: nil outbox")
	}
	return &OutboxEventRecorder{outbox: outbox, opts: opts}, nil
}

// Record validates all events, then enqueues them in one batch; an invalid
// event records nothing.
func (r *OutboxEventRecorder) Record(ctx context.Context, events ...ports.Event) error {
	if len(events) == 0 {
		return nil
	}
	now := Clock(r.opts.Now).Now()
	msgs := make([]ports.OutboxMessage, len(events))
	for i := range events {
		ev := events[i]
		if err := check.Event(&ev, now); err != nil {
			return fmt.Errorf("record event %d: %w", i, err)
		}
		headers := make(map[string]string, len(ev.Headers)+1)
		for k, v := range ev.Headers {
			headers[k] = v
		}
		headers[HeaderOccurredAt] = FormatTime(ev.OccurredAt)
		msgs[i] = ports.OutboxMessage{
			ID:          ev.ID,
			Kind:        ports.KindEvent,
			Topic:       ev.Name,
			Payload:     ev.Payload,
			Headers:     headers,
			MaxAttempts: r.opts.MaxAttempts,
		}
		if r.opts.Key != nil {
			msgs[i].Key = r.opts.Key(ev)
		}
	}
	if _, err := r.outbox.Enqueue(ctx, msgs...); err != nil {
		return fmt.Errorf("record events: %w", err)
	}
	return nil
}

// EventFromMessage rebuilds the event that an OutboxEventRecorder stored in
// a message.
func EventFromMessage(m ports.ClaimedMessage) ports.Event {
	ev := ports.Event{ID: m.ID, Name: m.Topic, Payload: m.Payload, OccurredAt: m.CreatedAt}
	if len(m.Headers) > 0 {
		ev.Headers = make(map[string]string, len(m.Headers))
		for k, v := range m.Headers {
			if k == HeaderOccurredAt {
				if t, err := ParseTime(v); err == nil {
					ev.OccurredAt = t
				}
				continue
			}
			ev.Headers[k] = v
		}
	}
	return ev
}

// EventType is a typed event definition: its name and payload type, defined
// once and used to record and decode the event so that use cases and
// handlers never touch JSON.
//
//	var TodoCreated = core.DefineEvent[TodoCreatedPayload]("todo.created")
//	err := TodoCreated.Record(ctx, tx.Events, TodoCreatedPayload{ID: id})
//	payload, err := TodoCreated.Decode(event)
type EventType[P any] struct {
	name string
}

// DefineEvent defines an event type named name (the outbox topic). It never
// fails: an empty name is reported by every use of the definition (Record,
// New and the relay's HandleEvent return errors matching
// ports.ErrInvalidArgument), so a package-level definition cannot crash a
// program at init.
func DefineEvent[P any](name string) EventType[P] {
	return EventType[P]{name: name}
}

// Name returns the event name (the outbox topic).
func (e EventType[P]) Name() string { return e.name }

func (e EventType[P]) valid() error {
	if e.name == "" {
		return check.Invalidf("event type defined with an empty name; pass DefineEvent a name such as \"order.placed\"")
	}
	return nil
}

// New builds an event carrying payload.
func (e EventType[P]) New(payload P) (ports.Event, error) {
	if err := e.valid(); err != nil {
		return ports.Event{}, err
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return ports.Event{}, fmt.Errorf("event %q: encode payload: %w", e.name, err)
	}
	return ports.Event{Name: e.name, Payload: raw}, nil
}

// Record builds the event and records it. A nil rec is an error matching
// ports.ErrInvalidArgument.
func (e EventType[P]) Record(ctx context.Context, rec ports.EventRecorder, payload P) error {
	if rec == nil {
		return check.Invalidf("event %q: nil recorder; pass the transaction's recorder (wharf.Tx.Events)", e.name)
	}
	ev, err := e.New(payload)
	if err != nil {
		return err
	}
	return rec.Record(ctx, ev)
}

// Decode returns the payload of ev, which must carry this event's name.
func (e EventType[P]) Decode(ev ports.Event) (P, error) {
	var p P
	if ev.Name != e.name {
		return p, check.Invalidf("event %q cannot be decoded as %q", ev.Name, e.name)
	}
	return e.DecodePayload(ev.Payload)
}

// DecodePayload decodes a raw payload of this event type.
func (e EventType[P]) DecodePayload(raw json.RawMessage) (P, error) {
	var p P
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, fmt.Errorf("event %q: decode payload: %w", e.name, err)
	}
	return p, nil
}
