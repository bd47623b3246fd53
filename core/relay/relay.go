package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/logging"
	"github.com/wharf-go/wharf/ports"
)

// Relay defaults: the values that zero Options fields stand for (see
// the fields of the same names).
const (
	DefaultBatchSize = 100
	// DefaultConcurrency is the Concurrency of a relay with the default
	// BatchSize: a zero Concurrency means twice BatchSize, whatever
	// BatchSize is.
	DefaultConcurrency      = 2 * DefaultBatchSize
	DefaultLease            = 30 * time.Second
	DefaultPollInterval     = 500 * time.Millisecond
	DefaultMaxPollInterval  = 5 * time.Second
	DefaultShutdownTimeout  = 10 * time.Second
	DefaultCompleteInterval = 10 * time.Millisecond
)

// UnknownTopicPolicy says what a relay does with a message whose topic has
// no handler.
type UnknownTopicPolicy int

const (
	// DeadLetterUnknown dead-letters the message at once, with a last error
	// that names the topic (matching ErrNoHandler). The default: a topic
	// nobody handles is usually a deployment mistake that operators should
	// see, and requeue once it is fixed.
	DeadLetterUnknown UnknownTopicPolicy = iota
	// LeaveUnknownPending leaves the message for another relay (for example
	// a newer version during a rolling deploy). The relay then claims only
	// the topics it has handlers for, so other topics are never claimed and
	// never spend an attempt, and nothing spins. One case cannot be filtered
	// in the claim: with a PublishEvents catch-all every topic is claimed,
	// and a job message without a handler is then retried after the backoff
	// delay like a failed attempt (spending that attempt, and dead-lettered
	// once none remain). Set Topics to keep such jobs out of the claim.
	LeaveUnknownPending
)

// String returns the policy name.
func (p UnknownTopicPolicy) String() string {
	switch p {
	case DeadLetterUnknown:
		return "dead-letter"
	case LeaveUnknownPending:
		return "leave-pending"
	default:
		return fmt.Sprintf("UnknownTopicPolicy(%d)", int(p))
	}
}

// Outcome is what happened to a claimed message, as reported to an
// Observer.
type Outcome string

const (
	// OutcomeDelivered: the handler succeeded (or EffectivelyOnce skipped a
	// redelivery) and the message was completed: it left the outbox.
	OutcomeDelivered Outcome = "delivered"
	// OutcomeRetried: the attempt failed and the message was scheduled for
	// another at Observation.RetryAt.
	OutcomeRetried Outcome = "retried"
	// OutcomeDead: the message was dead-lettered (permanent error, attempts
	// used up, or no handler).
	OutcomeDead Outcome = "dead"
	// OutcomeAbandoned: the relay let go of the message without recording
	// this attempt's outcome, and the message stays in the outbox: either
	// the claim had already passed on (the lease expired and another worker
	// claimed it, or it was released or completed elsewhere), or the write
	// of the outcome failed (Observation.Err says why) and the message is
	// delivered again once its lease expires. Nothing is lost, and another
	// owner's state is never overwritten.
	OutcomeAbandoned Outcome = "abandoned"
	// OutcomeReleased: the relay gave the message back unhandled on shutdown
	// (claimable at once, attempt refunded).
	OutcomeReleased Outcome = "released"
	// OutcomeExtended: the lease of a message still being handled was
	// extended. Not a final outcome: one of the others follows.
	OutcomeExtended Outcome = "extended"
)

// Observation describes one outcome of one claimed message.
type Observation struct {
	Outcome   Outcome
	Topic     string
	Kind      ports.MessageKind
	MessageID string
	// Attempt is the message's attempt number (1 for the first delivery).
	Attempt int
	// Duration is how long the handler ran (so far, for extended, abandoned and
	// released); zero when it never started.
	Duration time.Duration
	// Err is the handler's error (retried, dead), the reason of an
	// abandoned outcome, or nil.
	Err error
	// RetryAt is when a retried message becomes claimable again.
	RetryAt time.Time
	// LockedUntil is the new lease expiry of an extended message.
	LockedUntil time.Time
}

// Observer receives every outcome, for metrics and tests. It is called
// synchronously from the relay's goroutines, concurrently, so it must be
// safe for concurrent use and fast (never block on the relay's progress).
type Observer func(ctx context.Context, o Observation)

// Options configure a Relay. The zero value means the defaults; a
// negative duration or count is an error.
type Options struct {
	// BatchSize is the most messages one claim asks for. Default 100. A claim
	// never asks for more than the free handler slots either; while handlers
	// run, the relay claims again once min(BatchSize, Concurrency/2) slots
	// are free (or after PollInterval with fewer), so claims come back full.
	BatchSize int
	// Concurrency is the most handlers running at once, and so the most
	// messages held at once (besides those waiting for their completion to
	// be written). Default 2 × BatchSize (200 with the default BatchSize):
	// one batch is handled while the next is claimed. Lower it for handlers
	// that must not run that many at a time; with Concurrency below
	// BatchSize claims are smaller than BatchSize.
	Concurrency int
	// Lease is how long a claim holds a message. A handler still running a
	// third of the way into its lease gets the lease extended to now +
	// Lease, again and again, so Lease bounds how long a crashed relay's
	// messages stay locked, not how long handlers may run. Default 30s.
	Lease time.Duration
	// PollInterval is the pause before claiming again when nothing was
	// ready; it doubles after every empty claim up to MaxPollInterval and
	// falls back when messages arrive. Run also wakes at once on the
	// outbox's notifications (ports.OutboxNotifier) when it has them. It is
	// also the period of the lease checks (at most Lease/6). Default 500ms.
	PollInterval time.Duration
	// MaxPollInterval caps the idle back-off. Default 5s, or PollInterval if
	// that is longer.
	MaxPollInterval time.Duration
	// Topics, when not empty, restricts the relay to these topics.
	Topics []string
	// Backoff spaces retries (per-topic: TopicOptions.Backoff). The zero
	// value means the Backoff defaults (1s doubling to 1h, ±20% jitter).
	Backoff Backoff
	// ShutdownTimeout is how long a shutdown waits for in-flight handlers
	// before cancelling their ctx; handlers then get min(ShutdownTimeout, 1s)
	// more to return before their messages are released anyway. (The final
	// completion and release writes that follow are bounded by Lease: past
	// it the claims have expired anyway.) Default 10s.
	ShutdownTimeout time.Duration
	// CompleteBatchSize is the most completions written by one Complete
	// statement. Default BatchSize; 1 completes each message on its own.
	CompleteBatchSize int
	// CompleteInterval is the longest a successful message waits for its
	// batch to fill before the batch is written. Default 10ms. Completions
	// may be written sooner: before each claim, the relay writes the ones
	// it holds once they number at least the claim threshold (half of
	// Concurrency, at most BatchSize), so that its claims do not compete
	// with its own completions.
	CompleteInterval time.Duration
	// MaxMessages, when positive, stops a Drain after claiming that many
	// messages. Run ignores it.
	MaxMessages int
	// UnknownTopic is the policy for messages without a handler. Default
	// DeadLetterUnknown.
	UnknownTopic UnknownTopicPolicy
	// Now is the clock for retry times and lease bookkeeping; nil means
	// time.Now. Give it the outbox's clock. Poll and completion intervals
	// and the shutdown timeout are real time.
	Now func() time.Time
	// Logger receives the relay's logs (never payloads); nil means
	// slog.Default at warn level and above.
	Logger *slog.Logger
	// Observer, when set, is told every outcome.
	Observer Observer
	// Hooks observe every delivery for instrumentation (see core.Hooks):
	// the relay extracts the trace context of each message's headers and
	// calls Hooks.Start before its handler, whose context is the one Start
	// returns, and the end function once the message's outcome is recorded.
	// Give relays the Hooks the driver has.
	Hooks core.Hooks
	// OnFailure, when set, is told every failed claim, completion, lease
	// extension and release (which the relay retries itself), so that code
	// can see an outage that the logs, rate-limited to one record per kind
	// every FailureLogInterval, only summarise. It is called synchronously
	// and must be fast.
	OnFailure func(ctx context.Context, f Failure)
}

func (o *Options) setDefaults() {
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.Concurrency == 0 && o.BatchSize > 0 {
		o.Concurrency = 2 * o.BatchSize
	}
	if o.Lease == 0 {
		o.Lease = DefaultLease
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.MaxPollInterval == 0 {
		o.MaxPollInterval = max(DefaultMaxPollInterval, o.PollInterval)
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.CompleteBatchSize == 0 {
		o.CompleteBatchSize = o.BatchSize
	}
	if o.CompleteInterval == 0 {
		o.CompleteInterval = DefaultCompleteInterval
	}
	o.Logger = logging.OrDefault(o.Logger)
}

func (o *Options) validate() error {
	positive := []struct {
		name string
		v    int64
	}{
		{"BatchSize", int64(o.BatchSize)},
		{"Concurrency", int64(o.Concurrency)},
		{"Lease", int64(o.Lease)},
		{"PollInterval", int64(o.PollInterval)},
		{"MaxPollInterval", int64(o.MaxPollInterval)},
		{"ShutdownTimeout", int64(o.ShutdownTimeout)},
		{"CompleteBatchSize", int64(o.CompleteBatchSize)},
		{"CompleteInterval", int64(o.CompleteInterval)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return check.Invalidf("%s is negative; use 0 for the default", p.name)
		}
	}
	switch {
	case o.MaxPollInterval < o.PollInterval:
		return check.Invalidf("MaxPollInterval %v is below PollInterval %v", o.MaxPollInterval, o.PollInterval)
	case o.MaxMessages < 0:
		return check.Invalidf("MaxMessages %d is negative; use 0 for no limit", o.MaxMessages)
	case o.UnknownTopic != DeadLetterUnknown && o.UnknownTopic != LeaveUnknownPending:
		return check.Invalidf("UnknownTopic %v is not a policy; use DeadLetterUnknown or LeaveUnknownPending", o.UnknownTopic)
	}
	if err := o.Backoff.Validate(); err != nil {
		return err
	}
	for i, t := range o.Topics {
		if t == "" {
			return check.Invalidf("Topics[%d] is empty", i)
		}
		if err := check.Length(fmt.Sprintf("Topics[%d]", i), t); err != nil {
			return err
		}
	}
	return nil
}

// Relay drains an outbox: it claims messages under a lease, hands each to
// its handler with bounded concurrency, and completes (in batches), retries
// with backoff, or dead-letters them. It extends the leases of long
// handlers, discards outcomes whose claim was lost, and on shutdown releases
// what it did not handle. It uses only the ports, so it works on every
// provider. Create it with New.
//
// A Relay runs one Run or Drain at a time; start several Relays (in one
// process or many) to share the work: the outbox's claims keep them apart.
type Relay struct {
	outbox      ports.Outbox
	handlers    *Handlers
	opts        Options
	log         *slog.Logger
	claimTopics []string
	active      atomic.Bool
}

// New returns a relay that delivers outbox's messages to handlers. The
// options are completed with their defaults and then validated; an invalid
// option, a nil outbox, an empty handler set, or a LeaveUnknownPending relay
// left with no topic to claim is an error matching ports.ErrInvalidArgument.
// New seals handlers: registering more afterwards fails.
func New(outbox ports.Outbox, handlers *Handlers, opts Options) (*Relay, error) {
	if outbox == nil {
		return nil, fmt.Errorf("relay: new: nil outbox: %w", ports.ErrInvalidArgument)
	}
	if handlers == nil {
		return nil, fmt.Errorf("relay: new: nil handlers; build them with NewHandlers: %w", ports.ErrInvalidArgument)
	}
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("relay: new: %w", err)
	}
	opts.Topics = append([]string(nil), opts.Topics...)
	catchAll, err := handlers.seal()
	if err != nil {
		return nil, fmt.Errorf("relay: new: %w", err)
	}
	r := &Relay{outbox: outbox, handlers: handlers, opts: opts, log: opts.Logger}
	r.claimTopics = opts.Topics
	if opts.UnknownTopic == LeaveUnknownPending && !catchAll {
		// Claim only what this relay can handle: other topics stay untouched.
		handled := handlers.Topics()
		if len(opts.Topics) > 0 {
			handled = intersect(handled, opts.Topics)
		}
		if len(handled) == 0 {
			return nil, fmt.Errorf("relay: new: LeaveUnknownPending and none of Topics %q has a handler: nothing to claim: %w", opts.Topics, ports.ErrInvalidArgument)
		}
		r.claimTopics = handled
	}
	return r, nil
}

func intersect(a, b []string) []string {
	in := make(map[string]bool, len(b))
	for _, s := range b {
		in[s] = true
	}
	var out []string
	for _, s := range a {
		if in[s] {
			out = append(out, s)
		}
	}
	return out
}

// Options returns the relay's options with their defaults filled in.
func (r *Relay) Options() Options {
	o := r.opts
	o.Topics = append([]string(nil), o.Topics...)
	return o
}

// ClaimTopics returns the topics the relay's claims are restricted to (nil:
// every topic): Topics, narrowed to the handled topics under
// LeaveUnknownPending without an event catch-all.
func (r *Relay) ClaimTopics() []string { return append([]string(nil), r.claimTopics...) }

// DrainResult counts the outcomes of one Drain.
type DrainResult struct {
	// Claimed counts the messages claimed.
	Claimed int
	// Delivered counts messages completed (including redeliveries that
	// EffectivelyOnce skipped).
	Delivered int
	// Retried counts messages scheduled for another attempt.
	Retried int
	// DeadLettered counts messages moved to the dead letters.
	DeadLettered int
	// Abandoned counts messages let go of without an outcome; they stay in
	// the outbox (see OutcomeAbandoned).
	Abandoned int
	// Released counts messages given back unhandled because ctx was
	// cancelled.
	Released int
}

var errBusy = errors.New("relay: a Run or Drain of this relay is already running; start another Relay to add workers")

// Drain makes one pass over the outbox, cron or serverless style: it claims
// batches (never more than the free handler slots) until a claim returns
// fewer messages than it asked for, or MaxMessages were claimed, waits for
// the handlers, writes the pending completions and returns the counts.
// Messages that become ready during the pass may or may not be included,
// and so may messages that another claimer (a concurrent Drain or Run)
// holds for a moment without taking them: claims skip locked rows, so a
// short claim does not prove the outbox empty. What a pass leaves is for
// the next one.
//
// If ctx is cancelled, Drain stops claiming and shuts down as Run does (in
// flight handlers get ShutdownTimeout, then what is left is released) and
// returns the counts with ctx's error. A retryable claim error
// (ports.ErrRetryable: a deadlock, a busy or unreachable database) is
// logged as a warning and the claim retried after a short pause (a few
// milliseconds, doubling);
// after 8 such retries in a row, or on any other claim error, the pass ends
// early (after the same orderly finish) and the error is returned.
func (r *Relay) Drain(ctx context.Context) (DrainResult, error) {
	if !r.active.CompareAndSwap(false, true) {
		return DrainResult{}, errBusy
	}
	defer r.active.Store(false)
	p := newPass(ctx, r)
	return p.drain()
}

// Run relays until ctx is cancelled, then shuts down gracefully and returns
// nil (or the errors of the final completions and releases).
//
// It keeps at most Concurrency handlers running and claims only as many
// messages as it has free slots for. When a claim comes back short it waits
// PollInterval (doubling while claims come back empty, up to
// MaxPollInterval) — or less: when the outbox implements
// ports.OutboxNotifier, a notification wakes it at once (if Notifications
// fails it logs a warning and polls). Claim errors never stop Run: a
// retryable one (ports.ErrRetryable: a deadlock, a busy or unreachable
// database) is logged as a warning and retried after a short pause (a few
// milliseconds, doubling up to 1s while they repeat), any other is logged
// as an error and retried after the idle back-off.
//
// On cancellation it stops claiming, gives in-flight handlers up to
// ShutdownTimeout to finish (their leases are still extended), then cancels
// their ctx, writes the pending completions and releases every claimed
// message without an outcome (ports.Outbox.Release: claimable at once,
// attempt refunded), so nothing stays locked until its lease expires.
func (r *Relay) Run(ctx context.Context) error {
	if !r.active.CompareAndSwap(false, true) {
		return errBusy
	}
	defer r.active.Store(false)
	p := newPass(ctx, r)
	return p.run()
}

// now is the relay's clock.
func (r *Relay) now() time.Time { return core.Clock(r.opts.Now).Now() }

// backoff returns the backoff policy of a route.
func (r *Relay) backoff(rt *route) Backoff {
	if rt.opts.Backoff != (Backoff{}) {
		return rt.opts.Backoff
	}
	return r.opts.Backoff
}

// maxAttempts is the attempt after which msg is dead-lettered.
func maxAttempts(rt *route, msg ports.ClaimedMessage) int {
	limit := msg.MaxAttempts
	if rt.opts.MaxAttempts > 0 && (limit <= 0 || rt.opts.MaxAttempts < limit) {
		limit = rt.opts.MaxAttempts
	}
	return limit
}

// decision is what the relay does with a failed attempt.
type decision struct {
	dead  bool
	delay time.Duration
}

// decide chooses between retry and dead letter for a failed attempt.
func (r *Relay) decide(rt *route, msg ports.ClaimedMessage, err error) decision {
	if IsPermanent(err) {
		return decision{dead: true}
	}
	if rt.unknown && r.opts.UnknownTopic == DeadLetterUnknown {
		return decision{dead: true}
	}
	if limit := maxAttempts(rt, msg); limit > 0 && msg.Attempts >= limit {
		return decision{dead: true}
	}
	if d, ok := RetryAfterDelay(err); ok {
		return decision{delay: d}
	}
	return decision{delay: r.backoff(rt).Delay(msg.Attempts)}
}
