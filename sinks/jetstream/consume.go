package jetstream

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

// Msg is what EventFromMsg reads of a consumed message; jetstream.Msg
// implements it.
type Msg interface {
	Subject() string
	Headers() nats.Header
	Data() []byte
}

var _ Msg = jetstream.Msg(nil)

// EventFromMsg rebuilds, in a consuming service, the event that a Publisher
// published: ID from Nats-Msg-Id (the outbox message ID), Name from
// HeaderTopic (the subject when it is missing), Payload from the data,
// OccurredAt from core.HeaderOccurredAt (zero when missing), and Headers
// from the other headers (first value of each), without the publisher's
// own (HeaderTopic, HeaderKey, Nats-*). The ordering key, when there was
// one, is msg.Headers().Get(HeaderKey). A message without Nats-Msg-Id or
// with an unreadable OccurredAt is an error matching
// ports.ErrInvalidArgument: it was not published by a Publisher.
//
// Consumers see a message again when they fail to acknowledge it, so they
// deduplicate on the event ID where it matters (for example with
// relay.EffectivelyOnce's store, or a unique constraint).
func EventFromMsg(msg Msg) (ports.Event, error) {
	h := msg.Headers()
	ev := ports.Event{ID: h.Get(jetstream.MsgIDHeader), Name: h.Get(HeaderTopic), Payload: msg.Data()}
	if ev.ID == "" {
		return ports.Event{}, invalidf("event from message on subject %q: no %s header; the message was not published by a wharf Publisher", msg.Subject(), jetstream.MsgIDHeader)
	}
	if ev.Name == "" {
		ev.Name = msg.Subject()
	}
	for k, vs := range h {
		if len(vs) == 0 {
			continue
		}
		switch {
		case k == core.HeaderOccurredAt:
			t, err := core.ParseTime(vs[0])
			if err != nil {
				return ports.Event{}, fmt.Errorf("jetstream: event %s: header %s %q: %w: %w", ev.ID, k, vs[0], err, ports.ErrInvalidArgument)
			}
			ev.OccurredAt = t
		case k == HeaderTopic, k == HeaderKey, strings.HasPrefix(k, "Nats-"):
		default:
			if ev.Headers == nil {
				ev.Headers = make(map[string]string, len(h))
			}
			ev.Headers[k] = vs[0]
		}
	}
	return ev, nil
}
