package wharf

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/logging"
	"github.com/wharf-go/wharf/ports"
)

// DefaultTxAttempts is how many times a unit of work runs a transaction
// that keeps hitting retryable conflicts.
const DefaultTxAttempts = 3

// maxRetryDelay caps the pause between attempts.
const maxRetryDelay = time.Second

// UnitOfWorkOptions configure NewUnitOfWork. The zero value means the
// defaults.
type UnitOfWorkOptions struct {
	// EventBus receives the events recorded through Tx.AfterCommit, after a
	// successful commit; nil drops them.
	EventBus ports.EventBus
	// TxOptions are passed to BEGIN (isolation level, read-only); nil
	// means the database's defaults.
	TxOptions *sql.TxOptions
	// MaxAttempts bounds the runs of a transaction that hits retryable
	// conflicts (ports.ErrRetryable). Default DefaultTxAttempts; 1
	// disables retries; negative is an error.
	MaxAttempts int
	// RetryDelay is the base pause between attempts (doubled per attempt,
	// jittered, at most 1s). Default 5ms.
	RetryDelay time.Duration
	// Logger; nil means slog.Default at warn level and above.
	Logger *slog.Logger
}

// UnitOfWork implements ports.UnitOfWork[T] on a driver: each Transaction
// is one database transaction in which build makes T from the Tx.
type UnitOfWork[T any] struct {
	drv   *Driver
	build func(tx Tx) (T, error)
	opts  UnitOfWorkOptions
	key   *int // unique context key per unit of work
}

// NewUnitOfWork returns a unit of work on drv that calls build once per
// transaction (and attempt) to make the application's transaction-scoped
// ports from the Tx. A nil driver or build function or invalid options are
// an error matching ports.ErrInvalidArgument.
func NewUnitOfWork[T any](drv *Driver, build func(tx Tx) (T, error), opts UnitOfWorkOptions) (*UnitOfWork[T], error) {
	switch {
	case drv == nil:
		return nil, check.Invalidf("wharf: unit of work: nil driver")
	case build == nil:
		return nil, check.Invalidf("wharf: unit of work: nil build function; pass a func(tx wharf.Tx) (T, error)")
	case opts.MaxAttempts < 0:
		return nil, check.Invalidf("wharf: unit of work: MaxAttempts %d is negative; use 0 for the default or 1 to disable retries", opts.MaxAttempts)
	case opts.RetryDelay < 0:
		return nil, check.Invalidf("wharf: unit of work: RetryDelay %v is negative; use 0 for the default", opts.RetryDelay)
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = DefaultTxAttempts
	}
	if opts.RetryDelay == 0 {
		opts.RetryDelay = 5 * time.Millisecond
	}
	opts.Logger = logging.OrDefault(opts.Logger)
	return &UnitOfWork[T]{drv: drv, build: build, opts: opts, key: new(int)}, nil
}

// txState is one attempt's transaction-scoped state.
type txState[T any] struct {
	ports  T
	now    func() time.Time
	mu     sync.Mutex
	events []ports.Event
	ended  bool // fn returned: the transaction committed or rolled back
}

// errTxEnded is returned to a Transaction that tries to join, or an
// AfterCommit that records into, a transaction that already ended: its ctx
// escaped fn (kept by a goroutine, say).
var errTxEnded = fmt.Errorf("the unit of work's transaction has already ended (a ctx from its fn was used after fn returned; start a new Transaction with a ctx of your own): %w", sql.ErrTxDone)

// end marks the transaction ended (fn returned; it is about to commit or
// roll back) and returns the events recorded for after the commit.
func (s *txState[T]) end() []ports.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = true
	return s.events
}

func (s *txState[T]) hasEnded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}

// record is Tx.AfterCommit in a unit of work.
func (s *txState[T]) record(_ context.Context, events ...ports.Event) error {
	now := core.Clock(s.now).Now()
	prepared := make([]ports.Event, len(events))
	for i, ev := range events {
		if err := check.Event(&ev, now); err != nil {
			return fmt.Errorf("record event %d: %w", i, err)
		}
		prepared[i] = ev
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return fmt.Errorf("record events: %w", errTxEnded)
	}
	s.events = append(s.events, prepared...)
	return nil
}

// Transaction implements ports.UnitOfWork: fn runs in one transaction with
// the T that build made from its Tx; the transaction commits when fn
// returns nil and rolls back on an error or a panic. Messages enqueued
// through Tx.Outbox and events recorded through Tx.Events commit with it
// (and wake this process's relays after the commit); events recorded
// through Tx.AfterCommit are published to the EventBus after the commit. A
// Transaction with a ctx of this unit of work's fn joins that transaction.
// Retryable conflicts run fn again in a new transaction, up to MaxAttempts.
func (u *UnitOfWork[T]) Transaction(ctx context.Context, fn func(ctx context.Context, tx T) error) error {
	if st, ok := ctx.Value(u.key).(*txState[T]); ok {
		if st.hasEnded() {
			return fmt.Errorf("join transaction: %w", errTxEnded)
		}
		return fn(ctx, st.ports) // join the outer transaction
	}
	ctx, end := u.drv.hooks.StartOp(ctx, func() core.Operation {
		return core.Operation{Kind: core.OpTransaction, Dialect: u.drv.name}
	})
	e := core.End{Outcome: "rolled_back"}
	defer func() { end(e) }()
	var err error
	for attempt := 1; ; attempt++ {
		e.Attempts = attempt
		var events []ports.Event
		events, err = u.observedAttempt(ctx, attempt, fn)
		if err == nil {
			e.Outcome = "committed"
			e.Err = u.publish(ctx, events)
			return e.Err
		}
		if !errors.Is(err, ports.ErrRetryable) || attempt >= u.opts.MaxAttempts {
			if attempt > 1 {
				err = fmt.Errorf("transaction failed after %d attempts: %w", attempt, err)
			}
			e.Err = err
			return err
		}
		if u.drv.hooks.Start != nil {
			e.Retries = append(e.Retries, err)
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
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// observedAttempt is attempt observed by the hooks (core.OpAttempt).
func (u *UnitOfWork[T]) observedAttempt(ctx context.Context, n int, fn func(ctx context.Context, tx T) error) ([]ports.Event, error) {
	ctx, end := u.drv.hooks.StartOp(ctx, func() core.Operation {
		return core.Operation{Kind: core.OpAttempt, Dialect: u.drv.name, Attempt: n}
	})
	e := core.End{Outcome: "rolled_back", Attempts: n} // also when fn panics
	defer func() { end(e) }()
	events, err := u.attempt(ctx, fn)
	e.Err = err
	if err == nil {
		e.Outcome = "committed"
	}
	return events, err
}

func (u *UnitOfWork[T]) attempt(ctx context.Context, fn func(ctx context.Context, tx T) error) (_ []ports.Event, err error) {
	drv := u.drv
	ctx, leave, err := drv.d.Gate(drv.db).Enter(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin transaction: wait for the write gate: %w", err)
	}
	defer leave() // deferred first, so it runs after the rollback below
	tx, err := drv.db.BeginTx(ctx, u.opts.TxOptions)
	if err != nil {
		return nil, fmt.Errorf("begin transaction: %w", drv.d.Translate(err))
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
	st := &txState[T]{now: drv.now}
	bound, ob := drv.bind(tx, ports.EventRecorderFunc(st.record))
	ob.AnnounceCommit() // ob.Committed below sends the notification of its enqueues
	p, err := u.build(bound)
	if err != nil {
		return nil, fmt.Errorf("build transaction ports: %w", drv.d.Translate(err))
	}
	st.ports = p
	err = fn(context.WithValue(ctx, u.key, st), p)
	events := st.end() // from here no call may join the transaction, nor record events
	if err != nil {
		return nil, drv.d.Translate(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", drv.d.Translate(err))
	}
	committed = true
	if ob.Enqueued() {
		ob.Committed() // wake this process's relays, and other processes' (PostgreSQL)
	}
	return events, nil
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
