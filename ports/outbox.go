package ports

import (
	"context"
	"encoding/json"
	"time"
)

// MessageKind says what an outbox message is for.
type MessageKind string

const (
	// KindEvent is a domain event to publish.
	KindEvent MessageKind = "event"
	// KindJob is a job to run.
	KindJob MessageKind = "job"
)

// MessageStatus is the stored state of an outbox message. Delivered messages
// are deleted from the outbox table, so they have no status of their own.
type MessageStatus string

const (
	// StatusPending covers messages that wait, are scheduled for later, are
	// leased to a worker, or wait for a retry.
	StatusPending MessageStatus = "pending"
	// StatusDead covers dead letters: messages that failed permanently or
	// exhausted their attempts. They stay until requeued or purged.
	StatusDead MessageStatus = "dead"
)

// OutboxMessage is a message to enqueue.
type OutboxMessage struct {
	// ID is assigned (UUIDv7) when empty. A caller-chosen ID must be unique,
	// and with a Key it sets the message's place in its key's order: choose
	// IDs that increase in enqueue order (UUIDv7, not random UUIDv4), or
	// leave ID empty.
	ID string
	// Kind defaults to KindEvent when empty.
	Kind MessageKind
	// Topic routes the message to a handler. Required, at most 255 characters.
	Topic string
	// Key is an optional ordering key: messages with the same non-empty key
	// are handed out one at a time, in ID order, which is enqueue order for
	// assigned IDs (see ID). At most 255 characters.
	Key string
	// Payload is the message body. Required and must be valid JSON.
	Payload json.RawMessage
	// Headers carry metadata. Optional.
	Headers map[string]string
	// AvailableAt is the earliest time the message may be claimed; zero means
	// now.
	AvailableAt time.Time
	// MaxAttempts bounds deliveries; zero means the outbox's default.
	MaxAttempts int
}

// ClaimedMessage is a message handed to a worker under a lease.
type ClaimedMessage struct {
	ID      string
	Kind    MessageKind
	Topic   string
	Key     string
	Payload json.RawMessage
	Headers map[string]string
	// Attempts counts claims, this one included.
	Attempts    int
	MaxAttempts int
	AvailableAt time.Time
	// LockedUntil is when the lease expires unless extended.
	LockedUntil time.Time
	// LastError is the error recorded by the previous failed attempt.
	LastError string
	CreatedAt time.Time
	// Token fences every later change to this claim.
	Token string
}

// Claim returns the reference used to complete, retry, dead-letter, extend
// or release the message.
func (m ClaimedMessage) Claim() Claim { return Claim{ID: m.ID, Token: m.Token} }

// Claim identifies one claimed message and the claim that holds it.
type Claim struct {
	ID    string
	Token string
}

// ClaimOptions controls Outbox.Claim.
type ClaimOptions struct {
	// Limit is the most messages to claim; must be positive.
	Limit int
	// Lease is how long the claim holds each message; must be positive.
	Lease time.Duration
	// Topics, when not empty, restricts the claim to these topics.
	Topics []string
}

// RetryOptions controls Outbox.Retry.
type RetryOptions struct {
	// At is when the message becomes claimable again; zero means now.
	At time.Time
	// LastError is stored for operators and for the next attempt.
	LastError string
}

// Outbox stores messages in the caller's transaction and hands them out to
// workers under leases.
//
// Every change to a claimed message is fenced on its claim token: a change
// made with a token that no longer holds the message (the message was
// completed, released, dead-lettered, or reclaimed by another worker after
// the lease expired) changes nothing and returns an error matching
// ErrClaimLost.
type Outbox interface {
	// Enqueue validates and inserts messages, all or none, in the outbox's
	// database handle (bind it to a transaction so the messages commit with
	// the business write). It returns the IDs in input order. Invalid input
	// (empty topic, payload that is not JSON, negative MaxAttempts,
	// over-long topic or key) matches ErrInvalidArgument and inserts nothing.
	Enqueue(ctx context.Context, msgs ...OutboxMessage) ([]string, error)

	// Claim hands out up to opts.Limit messages, ordered by AvailableAt then
	// ID. A message is eligible when it is pending, AvailableAt <= now, it is
	// not leased (or its lease expired), it matches opts.Topics, and no
	// earlier (lower ID) pending message has the same non-empty Key. Each
	// claimed message gets a new token, a lease of opts.Lease and one more
	// attempt. A message whose lease expired on its final attempt is
	// dead-lettered instead and never handed out again. Concurrent claimers
	// never receive the same message while its lease is live.
	Claim(ctx context.Context, opts ClaimOptions) ([]ClaimedMessage, error)

	// Complete marks claimed messages delivered (they leave the outbox) in
	// one statement. Claims that were lost are skipped and reported by an
	// error matching ErrClaimLost (a *ClaimLostError naming them); the others
	// are completed regardless.
	Complete(ctx context.Context, claims ...Claim) error

	// Retry makes a claimed message claimable again at opts.At, storing
	// opts.LastError. If the message has used all its attempts it is
	// dead-lettered instead.
	Retry(ctx context.Context, claim Claim, opts RetryOptions) error

	// DeadLetter moves a claimed message to the dead letters with lastError.
	DeadLetter(ctx context.Context, claim Claim, lastError string) error

	// Extend renews the claim's lease to now + lease and returns the new
	// expiry.
	Extend(ctx context.Context, claim Claim, lease time.Duration) (time.Time, error)

	// Release gives claimed messages back unhandled: claimable at once, in
	// their original place, with the attempt of this claim refunded. Used on
	// graceful shutdown. Lost claims are reported as by Complete.
	Release(ctx context.Context, claims ...Claim) error
}
