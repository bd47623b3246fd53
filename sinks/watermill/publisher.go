package watermill

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// Metadata the publisher sets on every Watermill message besides the outbox
// message's own headers.
const (
	// HeaderTopic carries the outbox topic, which the Watermill topic may
	// not spell as it is (see Options.Topic).
	HeaderTopic = "wharf-topic"
	// HeaderKey carries the outbox message's ordering key, when it has one.
	HeaderKey = "wharf-key"
)

// Options configure a Publisher. The zero value means the defaults.
type Options struct {
	// Topic maps an outbox topic to the Watermill topic its messages are
	// published to. An empty result dead-letters the message with an error
	// that says so. nil means the outbox topic itself.
	Topic func(topic string) string
	// Permanent reports whether a Publish error can never succeed on a
	// retry (for example a broker's "topic does not exist" or "message too
	// large"): the message is then dead-lettered at once. Errors it does
	// not claim are retried with the relay's backoff. nil means every error
	// is retried. A publisher may also return relay.Permanent(err) itself.
	Permanent func(err error) bool
	// Logger receives a debug record for each redelivered message (claimed
	// again after a failure, a lost lease or a crash) that the publisher
	// publishes again: a broker that does not deduplicate on the message
	// UUID delivers it twice. Records carry the message ID, topics and
	// attempt, never payloads or headers. Failures are not logged here:
	// they are returned to the relay, which logs and records them. nil
	// means slog.Default at warn level and above, so nothing from this
	// package.
	Logger *slog.Logger
}

// Publisher publishes outbox messages through a Watermill
// message.Publisher: it is a relay handler (Handle), and a ports.EventBus
// (Publish) for the relay's event catch-all (relay.Handlers.PublishEvents).
//
// Watermill's Publish takes no context, so a publish in progress cannot be
// interrupted by the relay (a topic's Timeout, a lost claim, a shutdown):
// bound it with the Watermill publisher's own timeouts. The message's
// context (message.Message.Context) is the handler's ctx, for publishers
// and decorators (tracing) that read it during Publish.
//
// Watermill publishers are safe for concurrent use, and so is a Publisher.
type Publisher struct {
	pub  message.Publisher
	opts Options
}

// NewPublisher returns a publisher through pub. A nil pub is an error
// matching ports.ErrInvalidArgument. The Publisher does not own pub: close
// it after the relays that use it stopped.
func NewPublisher(pub message.Publisher, opts Options) (*Publisher, error) {
	if pub == nil {
		return nil, invalidf("new publisher: nil Watermill publisher")
	}
	if opts.Topic == nil {
		opts.Topic = func(topic string) string { return topic }
	}
	return &Publisher{pub: pub, opts: opts}, nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("watermill: "+format+": %w", append(args, ports.ErrInvalidArgument)...)
}

// Register registers the publisher on hs as the handler of each topic, tuned
// by opts. It fails (matching ports.ErrInvalidArgument) on a nil hs, no
// topics, or whatever hs.Handle refuses. For every event topic without a
// handler of its own, register the publisher as the catch-all instead:
// hs.PublishEvents(p, opts).
func (p *Publisher) Register(hs *relay.Handlers, opts relay.TopicOptions, topics ...string) error {
	if hs == nil {
		return invalidf("register: nil handler set; pass relay.NewHandlers()")
	}
	if len(topics) == 0 {
		return invalidf("register: no topics; name the topics to publish, or use hs.PublishEvents(publisher, opts) for every event topic")
	}
	for _, topic := range topics {
		if err := hs.Handle(topic, p.Handle, opts); err != nil {
			return fmt.Errorf("watermill: register: %w", err)
		}
	}
	return nil
}

// Handle publishes msg as one Watermill message (UUID = msg.ID) and returns
// Publish's error: wrapped in relay.Permanent when Options.Permanent claims
// it, otherwise plain, so the relay retries it. It is a relay.Handler.
func (p *Publisher) Handle(ctx context.Context, msg ports.ClaimedMessage) error {
	target, err := p.publish(ctx, msg.ID, msg.Topic, msg.Key, msg.Headers, msg.Payload)
	// Only debug records: nil (slog.Default at warn and above) logs none.
	if err == nil && msg.Attempts > 1 && p.opts.Logger != nil && p.opts.Logger.Enabled(ctx, slog.LevelDebug) {
		p.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "watermill: published a redelivered message again; a broker that does not deduplicate on the UUID delivers it twice",
			slog.String("message_id", msg.ID), slog.String("topic", msg.Topic), slog.String("watermill_topic", target), slog.Int("attempt", msg.Attempts))
	}
	return err
}

// Publish publishes events one by one, in order, stopping at the first
// error, which it returns like Handle does. It makes the publisher a
// ports.EventBus for hs.PublishEvents: the relay's catch-all hands it each
// event rebuilt from its message (the ordering key is not part of an
// event, so HeaderKey is not set; OccurredAt travels in
// core.HeaderOccurredAt). An event without an ID is an error matching
// ports.ErrInvalidArgument: the ID is the message UUID.
func (p *Publisher) Publish(ctx context.Context, events ...ports.Event) error {
	for i, ev := range events {
		if ev.ID == "" {
			return relay.Permanent(invalidf("publish event %d (%q): empty ID; it becomes the message UUID", i, ev.Name))
		}
		headers := ev.Headers
		if !ev.OccurredAt.IsZero() {
			headers = make(map[string]string, len(ev.Headers)+1)
			for k, v := range ev.Headers {
				headers[k] = v
			}
			headers[core.HeaderOccurredAt] = core.FormatTime(ev.OccurredAt)
		}
		if _, err := p.publish(ctx, ev.ID, ev.Name, "", headers, ev.Payload); err != nil {
			return err
		}
	}
	return nil
}

// publish publishes one message and returns the Watermill topic it went to.
func (p *Publisher) publish(ctx context.Context, id, topic, key string, headers map[string]string, payload []byte) (string, error) {
	target := p.opts.Topic(topic)
	if target == "" {
		return "", relay.Permanent(invalidf("message %s: Options.Topic mapped topic %q to an empty Watermill topic; fix the mapping, then requeue the dead letters", id, topic))
	}
	m := message.NewMessage(id, message.Payload(payload))
	for k, v := range headers {
		m.Metadata[k] = v
	}
	m.Metadata[HeaderTopic] = topic
	if key != "" {
		m.Metadata[HeaderKey] = key
	}
	m.SetContext(ctx)
	if err := p.pub.Publish(target, m); err != nil {
		err = fmt.Errorf("watermill: publish message %s (topic %q) to Watermill topic %q: %w", id, topic, target, err)
		if p.opts.Permanent != nil && p.opts.Permanent(err) {
			return target, relay.Permanent(err)
		}
		return target, err
	}
	return target, nil
}

// EventFromMessage rebuilds, in a consuming service, the event that a
// Publisher published: ID from the UUID, Name from HeaderTopic (topic when
// that is missing), Payload, OccurredAt from core.HeaderOccurredAt (zero
// when missing), and Headers from the other metadata, without HeaderTopic
// and HeaderKey. An unreadable OccurredAt is an error matching
// ports.ErrInvalidArgument.
func EventFromMessage(topic string, m *message.Message) (ports.Event, error) {
	ev := ports.Event{ID: m.UUID, Name: m.Metadata.Get(HeaderTopic), Payload: []byte(m.Payload)}
	if ev.Name == "" {
		ev.Name = topic
	}
	for k, v := range m.Metadata {
		switch k {
		case core.HeaderOccurredAt:
			t, err := core.ParseTime(v)
			if err != nil {
				return ports.Event{}, fmt.Errorf("watermill: event %s: metadata %s %q: %w: %w", ev.ID, k, v, err, ports.ErrInvalidArgument)
			}
			ev.OccurredAt = t
		case HeaderTopic, HeaderKey:
		default:
			if ev.Headers == nil {
				ev.Headers = make(map[string]string, len(m.Metadata))
			}
			ev.Headers[k] = v
		}
	}
	return ev, nil
}
