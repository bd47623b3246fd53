// Package txn is the unit of work shared by every provider. Providers differ
// only in how they translate driver errors, which they pass in.
package txn

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

// DefaultMaxAttempts is how many times a transaction runs when it keeps
// hitting retryable conflicts.
const DefaultMaxAttempts = 3

// maxRetryDelay caps the pause between attempts.
const maxRetryDelay = time.Second

// Options configures a UnitOfWork. The zero value means defaults.
type Options struct {
	// EventBus receives the events recorded in a transaction after it
	// commits; nil means they are dropped after commit.
	EventBus ports.EventBus
	// TxOptions are passed to BeginTx (isolation level, read-only).
	TxOptions *sql.TxOptions
	// MaxAttempts bounds runs on retryable conflicts; zero means 3, 1 disables
	// retries. Negative is an error.
	MaxAttempts int
	// RetryDelay is the base pause between attempts (jittered, doubled per
	// attempt); zero means 5ms.
	RetryDelay time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// Build makes the transaction-scoped ports for one transaction.
type Build[T any] func(tx bun.IDB, events ports.EventRecorder) (T, error)

// UnitOfWork implements ports.UnitOfWork on a *bun.DB.
type UnitOfWork[T any] struct {
	db        *bun.DB
	build     Build[T]
	opts      Options
	translate func(error) error
	key       *int // unique context key per unit of work
	gate      *Gate
}

// New returns a unit of work; translate classifies driver errors.
func New[T any](db *bun.DB, build Build[T], opts Options, translate func(error) error) (*UnitOfWork[T], error) {
	if db == nil {
		return nil, core.Invalidf("unit of work: nil *bun.DB")
	}
	if build == nil {
		return nil, core.Invalidf("unit of work: nil build function; pass a func(tx bun.IDB, events ports.EventRecorder) (T, error)")
	}
	if opts.MaxAttempts < 0 {
		return nil, core.Invalidf("unit of work: MaxAttempts %d is negative; use 0 for the default or 1 to disable retries", opts.MaxAttempts)
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = DefaultMaxAttempts
	}
	if opts.RetryDelay == 0 {
		opts.RetryDelay = 5 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &UnitOfWork[T]{db: db, build: build, opts: opts, translate: translate, key: new(int)}, nil
}

type txState[T any] struct {
	ports  T
	mu     sync.Mutex
	events []ports.Event
}

func (s *txState[T]) record(_ context.Context, events ...ports.Event) error {
	now := core.Clock(nil).Now()
	prepared := make([]ports.Event, len(events))
	for i, ev := range events {
		if err := core.PrepareEvent(&ev, now); err != nil {
			return fmt.Errorf("record event %d: %w", i, err)
		}
		prepared[i] = ev
	}
	s.mu.Lock()
	s.events = append(s.events, prepared...)
	s.mu.Unlock()
	return nil
}

// NewGated is New with a write gate: every transaction waits for g before
// BEGIN and leaves it after COMMIT or ROLLBACK, and fn's context is inside g
// (see Gate). A nil g is New.
func NewGated[T any](db *bun.DB, build Build[T], opts Options, translate func(error) error, g *Gate) (*UnitOfWork[T], error) {
	u, err := New(db, build, opts, translate)
	if err != nil {
		return nil, err
	}
	u.gate = g
	return u, nil
}

// Transaction implements ports.UnitOfWork.
func (u *UnitOfWork[T]) Transaction(ctx context.Context, fn func(ctx context.Context, tx T) error) error {
	if st, ok := ctx.Value(u.key).(*txState[T]); ok {
		return fn(ctx, st.ports) // join the outer transaction
	}
	var err error
	for attempt := 1; ; attempt++ {
		var events []ports.Event
		events, err = u.attempt(ctx, fn)
		if err == nil {
			return u.publish(ctx, events)
		}
		if !errors.Is(err, ports.ErrRetryable) || attempt >= u.opts.MaxAttempts {
			if attempt > 1 {
				return fmt.Errorf("transaction failed after %d attempts: %w", attempt, err)
			}
			return err
		}
		u.opts.Logger.LogAttrs(ctx, slog.LevelDebug, "retrying transaction after a retryable conflict",
			slog.Int("attempt", attempt), slog.String("error", err.Error()))
		if werr := u.pause(ctx, attempt); werr != nil {
			return errors.Join(err, werr)
		}
	}
}

func (u *UnitOfWork[T]) pause(ctx context.Context, attempt int) error {
	d := min(u.opts.RetryDelay<<min(attempt-1, 10), maxRetryDelay)
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (u *UnitOfWork[T]) attempt(ctx context.Context, fn func(ctx context.Context, tx T) error) (_ []ports.Event, err error) {
	ctx, leave, err := u.gate.Enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin transaction: wait for the write gate: %w", err)
	}
	defer leave() // deferred first, so it runs after the rollback below
	tx, err := u.db.BeginTx(ctx, u.opts.TxOptions)
	if err != nil {
		return nil, fmt.Errorf("begin transaction: %w", u.translate(err))
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
		}
	}()
	st := &txState[T]{}
	p, err := u.build(tx, ports.EventRecorderFunc(st.record))
	if err != nil {
		return nil, fmt.Errorf("build transaction ports: %w", u.translate(err))
	}
	st.ports = p
	if err := fn(context.WithValue(ctx, u.key, st), p); err != nil {
		return nil, u.translate(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", u.translate(err))
	}
	committed = true
	return st.events, nil
}

func (u *UnitOfWork[T]) publish(ctx context.Context, events []ports.Event) error {
	if u.opts.EventBus == nil || len(events) == 0 {
		return nil
	}
	if err := u.opts.EventBus.Publish(ctx, events...); err != nil {
		u.opts.Logger.LogAttrs(ctx, slog.LevelError, "events not published after commit",
			slog.Int("events", len(events)), slog.String("error", err.Error()))
		return fmt.Errorf("%w: %w", ports.ErrPublishAfterCommit, err)
	}
	return nil
}
