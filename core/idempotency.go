package core

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/ports"
)

// Fingerprint hashes the parts of a request (for example method, path and
// body) into a fingerprint for ReserveRequest. Parts are length-prefixed, so
// ("ab","c") and ("a","bc") differ.
func Fingerprint(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// RunIdempotently runs fn at most once per idempotency key:
//
//   - Reserved: fn runs; on success its result is stored (as JSON) with
//     Complete and returned; on error the reservation is released with Fail
//     and fn's error returned, so a later retry may run it again.
//   - Replay: the stored result is decoded and returned with replayed=true;
//     fn does not run.
//   - InProgress: an error matching ports.ErrIdempotencyInProgress (HTTP 409).
//   - FingerprintMismatch: an error matching ports.ErrIdempotencyMismatch
//     (HTTP 422).
//
// To make the record commit atomically with fn's writes, call it inside a
// unit of work with a store bound to that transaction. A nil store or fn is
// an error matching ports.ErrInvalidArgument.
func RunIdempotently[R any](ctx context.Context, store ports.Idempotency, req ports.ReserveRequest, fn func(ctx context.Context) (R, error)) (result R, replayed bool, err error) {
	switch {
	case store == nil:
		return result, false, check.Invalidf("idempotency: nil store; pass the idempotency store (wharf.Tx.Idempotency inside a unit of work)")
	case fn == nil:
		return result, false, check.Invalidf("idempotency: nil fn; pass the function to run once per key")
	}
	res, err := store.Reserve(ctx, req)
	if err != nil {
		return result, false, fmt.Errorf("idempotency reserve: %w", err)
	}
	switch res.Status {
	case ports.Replay:
		if err := json.Unmarshal(res.Result, &result); err != nil {
			return result, true, fmt.Errorf("idempotency replay of namespace %q key %q: decode stored result: %w", req.Namespace, req.Key, err)
		}
		return result, true, nil
	case ports.InProgress:
		return result, false, fmt.Errorf("namespace %q key %q: %w", req.Namespace, req.Key, ports.ErrIdempotencyInProgress)
	case ports.FingerprintMismatch:
		return result, false, fmt.Errorf("namespace %q key %q: %w", req.Namespace, req.Key, ports.ErrIdempotencyMismatch)
	case ports.Reserved:
	default:
		return result, false, fmt.Errorf("idempotency reserve: unexpected status %v", res.Status)
	}

	result, err = runReleasingOnPanic(ctx, store, res, fn)
	if err != nil {
		if ferr := store.Fail(context.WithoutCancel(ctx), res); ferr != nil {
			return result, false, errors.Join(err, fmt.Errorf("idempotency release: %w", ferr))
		}
		return result, false, err
	}
	raw, err := json.Marshal(result)
	if err != nil {
		ferr := store.Fail(context.WithoutCancel(ctx), res)
		return result, false, errors.Join(fmt.Errorf("idempotency: encode result: %w", err), ferr)
	}
	if err := store.Complete(ctx, res, raw); err != nil {
		return result, false, fmt.Errorf("idempotency complete: %w", err)
	}
	return result, false, nil
}

// runReleasingOnPanic calls fn; if fn panics, the reservation is released
// before the panic continues, so a retry need not wait for the lease.
func runReleasingOnPanic[R any](ctx context.Context, store ports.Idempotency, res ports.Reservation, fn func(ctx context.Context) (R, error)) (R, error) {
	done := false
	defer func() {
		if !done {
			_ = store.Fail(context.WithoutCancel(ctx), res)
		}
	}()
	r, err := fn(ctx)
	done = true
	return r, err
}
