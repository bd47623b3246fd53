package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// Headers the publisher sets on every NATS message besides the outbox
// message's own headers (which travel as they are, W3C traceparent and
// tracestate included). The outbox's core.HeaderOccurredAt travels too.
const (
	// HeaderTopic carries the outbox topic, which the subject may not spell
	// as it is (see DefaultSubject and Options.Subject).
	HeaderTopic = "wharf-topic"
	// HeaderKey carries the outbox message's ordering key, when it has one.
	HeaderKey = "wharf-key"
)

// DefaultAckTimeout is the AckTimeout that a zero Options.AckTimeout stands
// for.
const DefaultAckTimeout = 5 * time.Second

// ErrNoStream is matched by the error of a publish whose subject no
// JetStream stream captures. The publisher returns it wrapped in
// relay.Permanent, so the relay dead-letters the message with a last error
// that names the subject and the topic.
var ErrNoStream = errors.New("no JetStream stream captures the subject")

// DefaultMaxPending is the MaxPending that a zero Options.MaxPending
// stands for.
const DefaultMaxPending = 4000

// Options configure a Publisher. The zero value means the defaults.
type Options struct {
	// Subject maps an outbox topic to the subject its messages are
	// published to. It must return a valid publish subject (non-empty
	// tokens separated by dots, no whitespace, no wildcards); a message
	// whose topic maps to anything else is dead-lettered with an error that
	// says so. nil means DefaultSubject.
	Subject func(topic string) string
	// AckTimeout bounds the wait for each publish acknowledgement (within
	// the handler's own ctx). A publish that times out is retried with the
	// relay's backoff, and the stream's duplicate window drops the copy if
	// the first one was stored after all. Default DefaultAckTimeout (5s).
	AckTimeout time.Duration
	// MaxPending bounds the publishes awaiting their acknowledgement at
	// once, across every relay that shares the Publisher; a publish past it
	// waits up to 200ms for a slot, then fails and is retried. Default
	// DefaultMaxPending (4000).
	MaxPending int
	// Stream, when set, names the stream that must store the messages:
	// every publish carries Nats-Expected-Stream, and a subject captured by
	// another stream dead-letters the message instead of landing there.
	// Empty means whichever stream captures the subject.
	Stream string
	// Logger receives a debug record for each publish that the stream's
	// duplicate window dropped (a redelivery of a message it already
	// holds). Failures are not logged here: they are returned to the relay,
	// which logs and records them. nil means slog.Default at warn level and
	// above, so nothing from this package.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Subject == nil {
		o.Subject = DefaultSubject
	}
	if o.AckTimeout == 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.MaxPending == 0 {
		o.MaxPending = DefaultMaxPending
	}
}

func (o Options) validate() error {
	if o.AckTimeout < 0 {
		return invalidf("AckTimeout %v is negative; use 0 for the default (%v)", o.AckTimeout, DefaultAckTimeout)
	}
	if o.MaxPending < 0 {
		return invalidf("MaxPending %d is negative; use 0 for the default (%d)", o.MaxPending, DefaultMaxPending)
	}
	if o.Stream != "" && !validStreamName(o.Stream) {
		return invalidf("Stream %q is not a valid stream name (no whitespace, '.', '*', '>', '/' or '\\'); leave it empty to accept any stream", o.Stream)
	}
	return nil
}

// Publisher publishes outbox messages to NATS JetStream: it is a relay
// handler (Handle), and a ports.EventBus (Publish) for the relay's event
// catch-all (relay.Handlers.PublishEvents).
//
// Each message goes to the subject Options.Subject maps its topic to, with
// its headers, HeaderTopic, HeaderKey and a Nats-Msg-Id header holding the
// outbox message ID, so the stream's duplicate window drops the copies that
// at-least-once redelivery produces: a message is stored once however often
// the relay hands it out, as long as its redeliveries fall within the
// window (the stream's Duplicates setting, 2 minutes by default; keep the
// relay's retry backoff, TopicOptions.Backoff, inside it, or lengthen it).
//
// Handle returns only once the stream acknowledged the message, so the
// relay completes a message after it is stored, and the next message of the
// same ordering key (which the outbox hands out only after this one is
// completed) is published after it: key order holds in the stream, even
// with several relays.
//
// Errors: a subject that no stream captures (ErrNoStream), an invalid
// subject or header name, a message larger than the server accepts and
// every other refusal the stream answers with a 4xx code (wrong expected
// stream, sealed stream, ...) are wrapped in relay.Permanent: the message is
// dead-lettered at once with a last error that says what to fix. Timeouts,
// lost connections and unavailable servers are plain errors: the relay
// retries them with backoff.
//
// Publishes are asynchronous on the connection, each handler awaiting its
// own acknowledgement: cheaper per message than a request-reply publish,
// with the same guarantee.
//
// A Publisher is safe for concurrent use; several relays may share one.
// Create one per connection and keep it: it subscribes once for the
// acknowledgements, until the connection closes.
type Publisher struct {
	js    jetstream.JetStream // the caller's: stream lookups
	async jetstream.JetStream // on the same connection: publishes, with AckTimeout and MaxPending
	opts  Options
}

// NewPublisher returns a publisher on js's connection (js is
// jetstream.New(nc), or NewWithDomain for a JetStream domain). A nil js or
// connection, or invalid options, are errors matching
// ports.ErrInvalidArgument.
func NewPublisher(js jetstream.JetStream, opts Options) (*Publisher, error) {
	if js == nil || js.Conn() == nil {
		return nil, invalidf("new publisher: nil JetStream context or connection; pass jetstream.New(nc)")
	}
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("jetstream: new publisher: %w", err)
	}
	async, err := jetstream.New(js.Conn(), jetstream.WithPublishAsyncTimeout(opts.AckTimeout), jetstream.WithPublishAsyncMaxPending(opts.MaxPending))
	if err != nil {
		return nil, fmt.Errorf("jetstream: new publisher: %w", err)
	}
	return &Publisher{js: js, async: async, opts: opts}, nil
}

// Register registers the publisher on hs as the handler of each topic, tuned
// by opts. It fails (matching ports.ErrInvalidArgument) on a nil hs, no
// topics, or whatever hs.Handle refuses (a topic registered twice, a set
// already used by a relay). For every event topic without a handler of its
// own, register the publisher as the catch-all instead:
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
			return fmt.Errorf("jetstream: register: %w", err)
		}
	}
	return nil
}

// Handle publishes msg and returns once the stream acknowledged it (a
// duplicate dropped by the stream's duplicate window counts as
// acknowledged). It is a relay.Handler; errors are classified as the
// Publisher documentation says.
func (p *Publisher) Handle(ctx context.Context, msg ports.ClaimedMessage) error {
	return p.publish(ctx, outgoing{id: msg.ID, topic: msg.Topic, key: msg.Key, headers: msg.Headers, payload: msg.Payload})
}

// Publish publishes events one by one, in order, stopping at the first
// error (which it returns, classified as Handle's are). It makes the
// publisher a ports.EventBus for hs.PublishEvents: the relay's catch-all
// hands it each event rebuilt from its message (ID, name, headers,
// OccurredAt; the ordering key is not part of an event, so HeaderKey is not
// set). An event without an ID is an error matching
// ports.ErrInvalidArgument: the ID is the deduplication key.
func (p *Publisher) Publish(ctx context.Context, events ...ports.Event) error {
	for i, ev := range events {
		if ev.ID == "" {
			return relay.Permanent(invalidf("publish event %d (%q): empty ID; the stream deduplicates on it", i, ev.Name))
		}
		headers := ev.Headers
		if !ev.OccurredAt.IsZero() {
			headers = make(map[string]string, len(ev.Headers)+1)
			for k, v := range ev.Headers {
				headers[k] = v
			}
			headers[core.HeaderOccurredAt] = core.FormatTime(ev.OccurredAt)
		}
		if err := p.publish(ctx, outgoing{id: ev.ID, topic: ev.Name, headers: headers, payload: ev.Payload}); err != nil {
			return err
		}
	}
	return nil
}

// outgoing is what publish needs of a message or an event.
type outgoing struct {
	id, topic, key string
	headers        map[string]string
	payload        []byte
}

func (p *Publisher) publish(ctx context.Context, o outgoing) error {
	subject := p.opts.Subject(o.topic)
	if err := checkSubject(subject); err != nil {
		return relay.Permanent(fmt.Errorf("jetstream: message %s: topic %q maps to subject %q, which %v; fix Options.Subject, then requeue the dead letters: %w",
			o.id, o.topic, subject, err, ports.ErrInvalidArgument))
	}
	m, err := p.natsMsg(subject, o)
	if err != nil {
		return relay.Permanent(err)
	}
	if err := ctx.Err(); err != nil {
		return p.classify(ctx, err, subject, o)
	}
	// The publisher's context times the acknowledgement out after
	// AckTimeout (ErrAsyncPublishTimeout), so an abandoned wait never
	// leaves its slot taken.
	paf, err := p.async.PublishMsgAsync(m)
	if err != nil {
		return p.classify(ctx, err, subject, o)
	}
	var ack *jetstream.PubAck
	select {
	case ack = <-paf.Ok():
	case err := <-paf.Err():
		return p.classify(ctx, err, subject, o)
	case <-ctx.Done():
		return p.classify(ctx, ctx.Err(), subject, o)
	}
	if ack.Duplicate && p.opts.Logger != nil {
		p.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "jetstream: the stream's duplicate window dropped a redelivered message",
			slog.String("message_id", o.id), slog.String("topic", o.topic), slog.String("stream", ack.Stream), slog.Uint64("sequence", ack.Sequence))
	}
	return nil
}

// natsMsg builds the NATS message: the outbox headers as they are, then the
// publisher's own, which win over outbox headers of the same names.
func (p *Publisher) natsMsg(subject string, o outgoing) (*nats.Msg, error) {
	h := make(nats.Header, len(o.headers)+4)
	for k, v := range o.headers {
		if !validHeaderName(k) {
			return nil, fmt.Errorf("jetstream: message %s: header name %q cannot travel in a NATS header (NATS allows printable ASCII without spaces and without %s); rename it where the message is recorded, then requeue the dead letters: %w",
				o.id, k, forbiddenHeaderChars, ports.ErrInvalidArgument)
		}
		h[k] = []string{v}
	}
	h[jetstream.MsgIDHeader] = []string{o.id}
	h[HeaderTopic] = []string{o.topic}
	if o.key != "" {
		h[HeaderKey] = []string{o.key}
	}
	if p.opts.Stream != "" {
		h[jetstream.ExpectedStreamHeader] = []string{p.opts.Stream}
	}
	return &nats.Msg{Subject: subject, Header: h, Data: o.payload}, nil
}
