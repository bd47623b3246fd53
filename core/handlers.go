package core

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/wharf-go/wharf/ports"
)

// Handler handles one claimed outbox message for a Relay.
//
// Returning nil marks the message delivered. Returning an error retries it
// after a backoff delay, or dead-letters it once its attempts are used up;
// wrap the error with Permanent to dead-letter at once, or with RetryAfter to
// choose the delay. A panic counts as an error (see PanicError).
//
// Delivery is at least once: a message may be handed out again after a
// crash, a lost lease or a failed completion, so handlers must tolerate
// redelivery (see EffectivelyOnce and EffectivelyOnceTx). ctx is cancelled
// when the relay loses the message's claim, when the topic's Timeout passes
// and when a shutdown outlasts RelayOptions.ShutdownTimeout; it is not
// cancelled by the cancellation of Run's or Drain's own ctx, so in-flight
// handlers can finish during a graceful shutdown. Never log msg.Payload
// blindly: it may hold personal data.
type Handler func(ctx context.Context, msg ports.ClaimedMessage) error

// TopicOptions tune how a relay handles one topic. The zero value means the
// relay's settings.
type TopicOptions struct {
	// Backoff spaces this topic's retries. The zero value means the relay's
	// RelayOptions.Backoff.
	Backoff Backoff
	// MaxAttempts, when positive, dead-letters this topic's messages after
	// that many attempts even if their stored MaxAttempts is higher. It can
	// only lower the limit: the outbox dead-letters a message on its stored
	// MaxAttempts whatever this says. Zero means the message's own limit.
	MaxAttempts int
	// Timeout, when positive, bounds each handler call: its ctx is cancelled
	// after Timeout and the error it then returns is retried like any other.
	// Zero means no limit (leases are still extended while it runs).
	Timeout time.Duration
}

func (o TopicOptions) validate() error {
	if err := o.Backoff.Validate(); err != nil {
		return err
	}
	if o.MaxAttempts < 0 {
		return Invalidf("MaxAttempts %d is negative; use 0 for the message's own limit", o.MaxAttempts)
	}
	if o.Timeout < 0 {
		return Invalidf("Timeout %v is negative; use 0 for no limit", o.Timeout)
	}
	return nil
}

// route is one registered handler.
type route struct {
	topic string // "" for the event catch-all and for unknown topics
	h     Handler
	opts  TopicOptions
	// unknown marks the route of messages without a handler.
	unknown bool
}

// Handlers routes outbox messages to handlers by topic. Register every
// handler before passing the set to NewRelay: the relay seals it, and later
// registrations fail. One Handlers may serve several relays. It is safe for
// concurrent use.
type Handlers struct {
	mu     sync.Mutex
	routes map[string]*route
	events *route // PublishEvents catch-all
	sealed bool
}

// NewHandlers returns an empty handler set.
func NewHandlers() *Handlers {
	return &Handlers{routes: make(map[string]*route)}
}

func (hs *Handlers) checkOpen(what string) error {
	if hs.sealed {
		return fmt.Errorf("core: %s: the handlers are already used by a relay; register every handler before NewRelay: %w", what, errInvalid)
	}
	return nil
}

func oneTopicOptions(what string, opts []TopicOptions) (TopicOptions, error) {
	switch len(opts) {
	case 0:
		return TopicOptions{}, nil
	case 1:
		if err := opts[0].validate(); err != nil {
			return TopicOptions{}, fmt.Errorf("core: %s: %w", what, err)
		}
		return opts[0], nil
	default:
		return TopicOptions{}, fmt.Errorf("core: %s: %d TopicOptions given; pass at most one: %w", what, len(opts), errInvalid)
	}
}

// Handle registers h for the messages of topic, with at most one
// TopicOptions. It fails (matching ports.ErrInvalidArgument) on an empty or
// over-long topic, a nil handler, a topic registered twice, invalid options,
// or after the set was passed to NewRelay.
func (hs *Handlers) Handle(topic string, h Handler, opts ...TopicOptions) error {
	what := fmt.Sprintf("handle topic %q", topic)
	if topic == "" {
		return fmt.Errorf("core: handle: empty topic; name the topic the handler serves: %w", errInvalid)
	}
	if err := CheckLength("topic", topic); err != nil {
		return fmt.Errorf("core: %s: %w", what, err)
	}
	if h == nil {
		return fmt.Errorf("core: %s: nil handler: %w", what, errInvalid)
	}
	o, err := oneTopicOptions(what, opts)
	if err != nil {
		return err
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if err := hs.checkOpen(what); err != nil {
		return err
	}
	if _, dup := hs.routes[topic]; dup {
		return fmt.Errorf("core: %s: a handler is already registered for this topic: %w", what, errInvalid)
	}
	hs.routes[topic] = &route{topic: topic, h: h, opts: o}
	return nil
}

// HandleEvent registers fn for the typed event ev (its name is the topic).
// fn receives the decoded payload and the event rebuilt from the message
// (EventFromMessage: ID, name, headers, OccurredAt). A payload that does not
// decode into P is a permanent error: the message is dead-lettered at once,
// since retrying cannot change it. It fails like Handle.
func HandleEvent[P any](hs *Handlers, ev EventType[P], fn func(ctx context.Context, payload P, event ports.Event) error, opts ...TopicOptions) error {
	if fn == nil {
		return fmt.Errorf("core: handle event %q: nil handler: %w", ev.Name(), errInvalid)
	}
	return hs.Handle(ev.Name(), func(ctx context.Context, msg ports.ClaimedMessage) error {
		event := EventFromMessage(msg)
		payload, err := ev.DecodePayload(msg.Payload)
		if err != nil {
			return Permanent(err)
		}
		return fn(ctx, payload, event)
	}, opts...)
}

// PublishEvents registers a catch-all: every message of kind event whose
// topic has no handler of its own is rebuilt with EventFromMessage and
// published to bus, one event per Publish call. A Publish error is retried
// like a handler error. Messages of kind job are never sent to the bus. It
// fails on a nil bus, a second call, invalid options, or after the set was
// passed to NewRelay.
func (hs *Handlers) PublishEvents(bus ports.EventBus, opts ...TopicOptions) error {
	const what = "publish events"
	if bus == nil {
		return fmt.Errorf("core: %s: nil event bus: %w", what, errInvalid)
	}
	o, err := oneTopicOptions(what, opts)
	if err != nil {
		return err
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if err := hs.checkOpen(what); err != nil {
		return err
	}
	if hs.events != nil {
		return fmt.Errorf("core: %s: an event bus is already registered: %w", what, errInvalid)
	}
	hs.events = &route{h: func(ctx context.Context, msg ports.ClaimedMessage) error {
		return bus.Publish(ctx, EventFromMessage(msg))
	}, opts: o}
	return nil
}

// Topics returns the topics with a handler of their own, sorted.
func (hs *Handlers) Topics() []string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	topics := make([]string, 0, len(hs.routes))
	for t := range hs.routes {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	return topics
}

// seal freezes the set for a relay and reports whether an event catch-all
// is registered.
func (hs *Handlers) seal() (catchAll bool, err error) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if len(hs.routes) == 0 && hs.events == nil {
		return false, fmt.Errorf("core: the handler set is empty; register handlers with Handle, HandleEvent or PublishEvents: %w", errInvalid)
	}
	hs.sealed = true
	return hs.events != nil, nil
}

// lookup returns the route of msg, or an unknown-topic route. After seal
// the set never changes, so it needs no lock.
func (hs *Handlers) lookup(msg ports.ClaimedMessage) *route {
	if r, ok := hs.routes[msg.Topic]; ok {
		return r
	}
	if msg.Kind == ports.KindEvent && hs.events != nil {
		return hs.events
	}
	return &route{topic: msg.Topic, unknown: true, h: func(context.Context, ports.ClaimedMessage) error {
		return noHandlerError(msg)
	}}
}

func noHandlerError(msg ports.ClaimedMessage) error {
	return fmt.Errorf("%w %q (kind %s): register one with Handle, HandleEvent or PublishEvents", ErrNoHandler, msg.Topic, msg.Kind)
}
