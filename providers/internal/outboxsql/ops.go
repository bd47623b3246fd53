package outboxsql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

func splitClaims(op string, claims []ports.Claim) (ids, tokens []string, err error) {
	ids = make([]string, 0, len(claims))
	tokens = make([]string, 0, len(claims))
	// The same claim given twice is applied once: counted twice, a fully
	// applied batch would look short (a lost claim).
	seen := make(map[ports.Claim]struct{}, len(claims))
	for i, c := range claims {
		if c.ID == "" || c.Token == "" {
			return nil, nil, fmt.Errorf("outbox %s: %w", op, core.Invalidf("claim %d has an empty ID or Token; pass ClaimedMessage.Claim()", i))
		}
		if _, dup := seen[c]; dup {
			continue
		}
		seen[c] = struct{}{}
		ids, tokens = append(ids, c.ID), append(tokens, c.Token)
	}
	return ids, tokens, nil
}

// Complete implements ports.Outbox: delivered messages leave the table.
func (o *Outbox) Complete(ctx context.Context, claims ...ports.Claim) error {
	return o.batch(ctx, "complete", claims, o.q.complete, o.q.completeRet, o.q.completeLost)
}

// Release implements ports.Outbox.
func (o *Outbox) Release(ctx context.Context, claims ...ports.Claim) error {
	return o.batch(ctx, "release", claims, o.q.release, o.q.releaseRet, o.q.releaseLost, core.FormatTime(o.now()))
}

// batch runs a statement fenced on (id IN ids AND claim_token IN tokens).
// A token embeds its message's ID, so the pair of IN lists matches exactly
// the given claims. With Dialect.Array, lost (the statement that returns the
// lost claims) runs instead, with the lists as arrays.
func (o *Outbox) batch(ctx context.Context, op string, claims []ports.Claim, plain, returning, lost string, lead ...any) error {
	if len(claims) == 0 {
		return nil
	}
	ids, tokens, err := splitClaims(op, claims)
	if err != nil {
		return err
	}
	ctx, leave, err := o.gate.EnterFor(ctx, "outbox", op)
	if err != nil {
		return err
	}
	defer leave()
	if o.dialect.Array != nil {
		var lostIDs []string
		err := o.againOnDeadlock(ctx, op, func() error {
			rows, err := o.db.QueryContext(ctx, lost, append([]any{o.dialect.Array(ids), o.dialect.Array(tokens)}, lead...)...)
			if err != nil {
				return err
			}
			lostIDs, err = scanList(rows)
			return err
		})
		if err != nil {
			return o.wrap(op, err)
		}
		if len(lostIDs) > 0 {
			return &ports.ClaimLostError{Op: op, IDs: lostIDs}
		}
		return nil
	}
	args := append(lead, bun.In(ids), bun.In(tokens))
	if o.dialect.Returning {
		rows, err := o.db.QueryContext(ctx, returning, args...)
		if err != nil {
			return o.wrap(op, err)
		}
		done, err := scanIDs(rows)
		if err != nil {
			return o.wrap(op, err)
		}
		return lostError(op, ids, done)
	}
	// Without RETURNING, first the fast path: the statement alone, in a
	// transaction (a savepoint when already in one), committed when it
	// matched every claim, the usual case.
	err = o.againOnDeadlock(ctx, op, func() error {
		return o.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			res, err := tx.ExecContext(ctx, plain, args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n != int64(len(ids)) {
				return errShort // roll back: which claims matched is unknown
			}
			return nil
		})
	})
	if !errors.Is(err, errShort) {
		if err != nil {
			return o.wrap(op, err) // the statement's error or BEGIN's or COMMIT's
		}
		return nil
	}
	// Some claims were lost. Find the claims still held, then apply the
	// change to exactly those, in one transaction (a savepoint when already
	// in one). The lost claims are reported after the commit: returned from
	// inside RunInTx, the error would roll back the change to the held ones.
	var held map[string]struct{}
	err = o.againOnDeadlock(ctx, op, func() error {
		held = nil
		return o.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
			rows, err := tx.QueryContext(ctx, o.q.present+" FOR UPDATE", bun.In(ids), bun.In(tokens))
			if err != nil {
				return err
			}
			if held, err = scanIDs(rows); err != nil {
				return err
			}
			if len(held) > 0 {
				_, err = tx.ExecContext(ctx, plain, append(lead, bun.In(keys(held)), bun.In(tokens))...)
			}
			return err
		})
	})
	if err != nil {
		return o.wrap(op, err)
	}
	return lostError(op, ids, held)
}

// errShort rolls back a fast-path statement that matched fewer rows than
// claims.
var errShort = errors.New("fewer rows than claims")

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// scanList returns the IDs of rows in order.
func scanList(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

func scanIDs(rows *sql.Rows) (map[string]struct{}, error) {
	defer rows.Close()
	out := make(map[string]struct{})
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = struct{}{}
	}
	return out, rows.Err()
}

func lostError(op string, ids []string, done map[string]struct{}) error {
	if len(done) == len(ids) {
		return nil
	}
	var lost []string
	for _, id := range ids {
		if _, ok := done[id]; !ok {
			lost = append(lost, id)
		}
	}
	return &ports.ClaimLostError{Op: op, IDs: lost}
}

func (o *Outbox) single(ctx context.Context, op string, claim ports.Claim, query string, args ...any) error {
	if claim.ID == "" || claim.Token == "" {
		return fmt.Errorf("outbox %s: %w", op, core.Invalidf("claim has an empty ID or Token; pass ClaimedMessage.Claim()"))
	}
	ctx, leave, err := o.gate.EnterFor(ctx, "outbox", op)
	if err != nil {
		return err
	}
	defer leave()
	res, err := o.db.ExecContext(ctx, query, append(args, claim.ID, claim.Token)...)
	if err != nil {
		return o.wrap(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return o.wrap(op, err)
	}
	if n == 0 {
		return &ports.ClaimLostError{Op: op, IDs: []string{claim.ID}}
	}
	return nil
}

// Retry implements ports.Outbox.
func (o *Outbox) Retry(ctx context.Context, claim ports.Claim, opts ports.RetryOptions) error {
	now := o.now()
	at := opts.At
	if at.IsZero() {
		at = now
	}
	return o.single(ctx, "retry", claim, o.q.retry, core.FormatTime(at), nullable(opts.LastError), core.FormatTime(now))
}

// DeadLetter implements ports.Outbox.
func (o *Outbox) DeadLetter(ctx context.Context, claim ports.Claim, lastError string) error {
	return o.single(ctx, "dead-letter", claim, o.q.deadLetter, nullable(lastError), core.FormatTime(o.now()))
}

// Extend implements ports.Outbox.
func (o *Outbox) Extend(ctx context.Context, claim ports.Claim, lease time.Duration) (time.Time, error) {
	if lease <= 0 {
		return time.Time{}, fmt.Errorf("outbox extend: %w", core.Invalidf("lease %v must be positive", lease))
	}
	now := o.now()
	until := now.Add(lease)
	if err := o.single(ctx, "extend", claim, o.q.extend, core.FormatTime(until), core.FormatTime(now)); err != nil {
		return time.Time{}, err
	}
	return until, nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}
