package core

import (
	"context"
	"time"
)

// Hooks let instrumentation (traces, metrics: see the otelwharf module)
// observe wharf's operations without wharf depending on it. Give the same
// Hooks to the driver (wharf.Options.Hooks) and to relays
// (relay.Options.Hooks). The zero value observes nothing and costs nothing;
// every field may be nil.
type Hooks struct {
	// Start is called when an operation begins. It returns the context the
	// operation runs with (for example carrying a span) and a function the
	// operation calls exactly once, when it ends, with its outcome. For a
	// delivery, the context is the handler's.
	Start func(ctx context.Context, op Operation) (context.Context, func(End))
	// Inject writes the trace context of ctx into the headers of a message
	// being enqueued (for example W3C traceparent, tracestate and baggage),
	// so that its delivery, maybe in another process, continues the trace.
	// Headers the message already has are not overwritten by wharf; Inject
	// may overwrite its own.
	Inject func(ctx context.Context, headers map[string]string)
	// Extract returns ctx carrying the trace context that Inject wrote into a
	// claimed message's headers. The relay calls it before Start of the
	// delivery.
	Extract func(ctx context.Context, headers map[string]string) context.Context
}

// OpKind names an operation observed by Hooks.
type OpKind string

// The operations.
const (
	// OpTransaction is one unit of work's Transaction, all its attempts.
	OpTransaction OpKind = "transaction"
	// OpAttempt is one attempt of a unit of work's transaction, inside its
	// OpTransaction: Operation.Attempt is its number (1 first) and
	// End.Outcome "committed" or "rolled_back". What the attempt did counts
	// only if it committed: a retried transaction's earlier attempts rolled
	// back.
	OpAttempt OpKind = "attempt"
	// OpEnqueue is one Outbox.Enqueue call.
	OpEnqueue OpKind = "enqueue"
	// OpClaim is one Outbox.Claim call.
	OpClaim OpKind = "claim"
	// OpReserve is one Idempotency.Reserve call.
	OpReserve OpKind = "reserve"
	// OpDeliver is one handler call of a relay, for one message.
	OpDeliver OpKind = "deliver"
)

// Operation describes an operation at its start.
type Operation struct {
	Kind OpKind
	// Dialect is the database: "sqlite", "postgres" or "mysql" (empty for
	// a delivery).
	Dialect string
	// Table is the outbox or idempotency table (enqueue, claim, reserve).
	Table string
	// Topics are the messages' topics: one per message, in order, for an
	// enqueue; the claim's topic filter for a claim; the message's topic for
	// a delivery.
	Topics []string
	// Count is how many messages an enqueue writes, or a claim's limit.
	Count int
	// MessageID, Attempt and CreatedAt describe the message of a delivery
	// (Attempt 1 is the first delivery; CreatedAt is when it was enqueued).
	// Attempt is also the number of a transaction's attempt (OpAttempt).
	MessageID string
	Attempt   int
	CreatedAt time.Time
	// Namespace is the idempotency namespace of a reservation.
	Namespace string
}

// End describes how an operation ended.
type End struct {
	// Err is the operation's error (for a delivery, the handler's).
	Err error
	// Outcome is what happened: for a delivery, the relay's outcome
	// ("delivered", "retried", "dead", "abandoned", "released"); for a
	// reservation, the ports.ReserveStatus ("reserved", "replay",
	// "in_progress", "fingerprint_mismatch"); for a transaction and for
	// an attempt, "committed" or "rolled_back"; empty otherwise.
	Outcome string
	// Count is how many messages a claim handed out.
	Count int
	// Duration is how long a delivery's handler ran (the operation itself
	// also covers recording the outcome).
	Duration time.Duration
	// Attempts is how many times a transaction ran; Retries are the
	// retryable errors that made it run again, in order.
	Attempts int
	Retries  []error
}

// noEnd is the end function of an unobserved operation.
func noEnd(End) {}

// StartOp calls h.Start when it is set; otherwise it returns ctx and a
// function that does nothing.
func (h Hooks) StartOp(ctx context.Context, op func() Operation) (context.Context, func(End)) {
	if h.Start == nil {
		return ctx, noEnd
	}
	return h.Start(ctx, op())
}
