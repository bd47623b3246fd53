package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/ports"
)

// EffectivelyOnceOptions tune EffectivelyOnce and EffectivelyOnceTx. The
// zero value means the idempotency store's defaults.
type EffectivelyOnceOptions struct {
	// Lease is how long a reservation is held before a redelivery may take
	// it over; make it longer than the handler's longest run. Zero means the
	// store's default. (EffectivelyOnceTx commits the reservation only with
	// the handler's writes, so there it matters little.)
	Lease time.Duration
	// TTL is how long the record of a handled message is kept, and so how
	// long a redelivery is recognised. Make it longer than a message can
	// wait for redelivery (its lease plus its retry backoff). Zero means the
	// store's default.
	TTL time.Duration
}

func onceRequest(namespace string, msg ports.ClaimedMessage, o EffectivelyOnceOptions) ports.ReserveRequest {
	return ports.ReserveRequest{
		IdempotencyKey: ports.IdempotencyKey{Namespace: namespace, Key: msg.ID},
		Fingerprint:    core.Fingerprint([]byte(msg.Topic), msg.Payload),
		Lease:          o.Lease,
		TTL:            o.TTL,
	}
}

func checkOnce(what, namespace string, o EffectivelyOnceOptions, nilArgs ...bool) error {
	if namespace == "" {
		return check.Invalidf("relay: %s: empty namespace; name the consumer, e.g. \"billing.order-placed\"", what)
	}
	if err := check.Length("namespace", namespace); err != nil {
		return fmt.Errorf("relay: %s: %w", what, err)
	}
	for _, isNil := range nilArgs {
		if isNil {
			return check.Invalidf("relay: %s: nil argument", what)
		}
	}
	if o.Lease < 0 || o.TTL < 0 {
		return check.Invalidf("relay: %s: Lease %v and TTL %v must not be negative (0 means the store's default)", what, o.Lease, o.TTL)
	}
	return nil
}

// onceError maps RunIdempotently's errors onto relay outcomes: a fingerprint
// mismatch (the same message ID with another topic or payload) cannot be
// fixed by retrying; everything else (including in-progress) is retried.
func onceError(err error) error {
	if errors.Is(err, ports.ErrIdempotencyMismatch) {
		return Permanent(err)
	}
	return err
}

// EffectivelyOnce wraps h so that a message it handled successfully is not
// handled again when the outbox redelivers it (after a crash, a lost lease
// or a failed completion). The message ID is the idempotency key within
// namespace; the fingerprint hashes topic and payload.
//
//   - First delivery: the key is reserved, h runs, and the key is completed
//     on success (released on error or panic, so a retry runs h again).
//   - Redelivery after success: h does not run; the message counts as
//     delivered.
//   - Redelivery while a reservation is held (the first delivery still runs,
//     or crashed less than the reservation lease ago): an error matching
//     ports.ErrIdempotencyInProgress, retried later with backoff.
//   - The same ID with another topic or payload: a permanent error.
//
// The contract, honestly: store's record and h's side effects are separate
// writes. If the process dies after h's side effects but before the record
// is completed, the reservation lapses after its lease and the redelivered
// message runs h again. Only when h's effects and the record commit in one
// database transaction is the outcome exactly once; use EffectivelyOnceTx
// for that. EffectivelyOnce suits effects that cannot join a transaction
// (an e-mail, an HTTP call): it closes the common redelivery windows, not
// every one. An empty namespace, a nil store or handler, or negative
// options are an error matching ports.ErrInvalidArgument.
func EffectivelyOnce(store ports.Idempotency, namespace string, h Handler, opts EffectivelyOnceOptions) (Handler, error) {
	if err := checkOnce("EffectivelyOnce", namespace, opts, store == nil, h == nil); err != nil {
		return nil, err
	}
	return func(ctx context.Context, msg ports.ClaimedMessage) error {
		_, _, err := core.RunIdempotently(ctx, store, onceRequest(namespace, msg, opts), func(ctx context.Context) (struct{}, error) {
			return struct{}{}, h(ctx, msg)
		})
		return onceError(err)
	}, nil
}

// EffectivelyOnceTx is EffectivelyOnce with the idempotency record in the
// handler's own transaction: each delivery runs one uow.Transaction in which
// the key is reserved in store(tx) (bind the store to the transaction, e.g.
// wharf.Tx.Idempotency), h runs with the same tx, and the key is completed; all of it
// commits or rolls back together. A redelivery after the commit skips h;
// a crash before the commit leaves nothing behind, so the redelivery runs h
// afresh. h's database writes through tx therefore happen exactly once;
// effects outside the transaction are still at least once. h must be safe
// to re-run, since the unit of work retries retryable conflicts. It fails
// as EffectivelyOnce does.
func EffectivelyOnceTx[T any](uow ports.UnitOfWork[T], store func(tx T) ports.Idempotency, namespace string,
	h func(ctx context.Context, tx T, msg ports.ClaimedMessage) error, opts EffectivelyOnceOptions) (Handler, error) {
	if err := checkOnce("EffectivelyOnceTx", namespace, opts, uow == nil, store == nil, h == nil); err != nil {
		return nil, err
	}
	return func(ctx context.Context, msg ports.ClaimedMessage) error {
		req := onceRequest(namespace, msg, opts)
		err := uow.Transaction(ctx, func(ctx context.Context, tx T) error {
			_, _, err := core.RunIdempotently(ctx, store(tx), req, func(ctx context.Context) (struct{}, error) {
				return struct{}{}, h(ctx, tx, msg)
			})
			return err
		})
		return onceError(err)
	}, nil
}
