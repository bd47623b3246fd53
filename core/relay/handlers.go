package relay

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
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
// and when a shutdown outlasts Options.ShutdownTimeout; it is not
// cancelled by the cancellation of Run's or Drain's own ctx, so in-flight
// handlers can finish during a graceful shutdown. Never log msg.Payload
// blindly: it may hold personal data.
type Handler func(ctx context.Context, msg ports.ClaimedMessage) error

// TopicOptions tune how a relay handles one topic. The zero value means the
// relay's settings.
type TopicOptions struct {
	// Backoff spaces this topic's retries. The zero value means the relay's
	// Options.Backoff.
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
		return check.Invalidf("MaxAttempts %d is negative; use 0 for the message's own limit", o.MaxAttempts)
	}
	if o.Timeout < 0 {
		return check.Invalidf("Timeout %v is negative; use 0 for no limit", o.Timeout)
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
// handler before passing the set to New: the relay seals it, and later
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
		return fmt.Errorf("relay: %s: the handlers are already used by a relay; register every handler before New: %w", what, ports.ErrInvalidArgument)
	}
	return nil
}

func checkTopicOptions(what string, o TopicOptions) error {
	if err := o.validate(); err != nil {
		return fmt.Errorf("relay: %s: %w", what, err)
	}
	return nil
}

// Handle registers h for the messages of topic, tuned by opts (the zero
// value means the relay's settings). It fails (matching
// ports.ErrInvalidArgument) on a nil set, an empty or over-long topic, a
// nil handler, a topic registered twice, invalid options, or after the set
// was passed to New.
func (hs *Handlers) Handle(topic string, h Handler, opts TopicOptions) error {
	what := fmt.Sprintf("handle topic %q", topic)
	if hs == nil {
		return fmt.Errorf("relay: %s: nil *Handlers; create the set with NewHandlers: %w", what, ports.ErrInvalidArgument)
	}
	if topic == "" {
		return fmt.Errorf("relay: handle: empty topic; name the topic the handler serves: %w", ports.ErrInvalidArgument)
	}
	if err := check.Length("topic", topic); err != nil {
		return fmt.Errorf("relay: %s: %w", what, err)
	}
	if h == nil {
		return fmt.Errorf("relay: %s: nil handler: %w", what, ports.ErrInvalidArgument)
	}
	if err := checkTopicOptions(what, opts); err != nil {
		return err
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if err := hs.checkOpen(what); err != nil {
		return err
	}
	if _, dup := hs.routes[topic]; dup {
		return fmt.Errorf("relay: %s: a handler is already registered for this topic: %w", what, ports.ErrInvalidArgument)
	}
	hs.routes[topic] = &route{topic: topic, h: h, opts: opts}
	return nil
}

// HandleEvent registers fn for the typed event ev (its name is the topic).
// fn receives the decoded payload and the event rebuilt from the message
// (EventFromMessage: ID, name, headers, OccurredAt). A payload that does not
// decode into P is a permanent error: the message is dead-lettered at once,
// since retrying cannot change it. It fails like Handle.
func HandleEvent[P any](hs *Handlers, ev core.EventType[P], fn func(ctx context.Context, payload P, event ports.Event) error, opts TopicOptions) error {
	if ev.Name() == "" {
		return check.Invalidf("relay: handle event: the event type was defined with an empty name; pass DefineEvent a name such as \"order.placed\"")
	}
	if fn == nil {
		return fmt.Errorf("relay: handle event %q: nil handler: %w", ev.Name(), ports.ErrInvalidArgument)
	}
	return hs.Handle(ev.Name(), func(ctx context.Context, msg ports.ClaimedMessage) error {
		event := core.EventFromMessage(msg)
		payload, err := ev.DecodePayload(msg.Payload)
		if err != nil {
			return Permanent(err)
		}
		return fn(ctx, payload, event)
	}, opts)
}

// PublishEvents registers a catch-all: every message of kind event whose
// topic has no handler of its own is rebuilt with EventFromMessage and
// published to bus, one event per Publish call. A Publish error is retried
// like a handler error. Messages of kind job are never sent to the bus. It
// fails on a nil bus, a second call, invalid options, or after the set was
// passed to New.
func (hs *Handlers) PublishEvents(bus ports.EventBus, opts TopicOptions) error {
	const what = "publish events"
	if hs == nil {
		return fmt.Errorf("relay: %s: nil *Handlers; create the set with NewHandlers: %w", what, ports.ErrInvalidArgument)
	}
	if bus == nil {
		return fmt.Errorf("relay: %s: nil event bus: %w", what, ports.ErrInvalidArgument)
	}
	if err := checkTopicOptions(what, opts); err != nil {
		return err
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if err := hs.checkOpen(what); err != nil {
		return err
	}
	if hs.events != nil {
		return fmt.Errorf("relay: %s: an event bus is already registered: %w", what, ports.ErrInvalidArgument)
	}
	hs.events = &route{h: func(ctx context.Context, msg ports.ClaimedMessage) error {
		return bus.Publish(ctx, core.EventFromMessage(msg))
	}, opts: opts}
	return nil
}

// Topics returns the topics with a handler of their own, sorted (none for
// a nil set).
func (hs *Handlers) Topics() []string {
	if hs == nil {
		return nil
	}
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
		return false, fmt.Errorf("relay: the handler set is empty; register handlers with Handle, HandleEvent or PublishEvents: %w", ports.ErrInvalidArgument)
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
