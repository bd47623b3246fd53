package wharf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/logging"
)

// Maintenance defaults.
const (
	// DefaultMaintenanceInterval is the pause between two rounds.
	DefaultMaintenanceInterval = time.Minute
	// DefaultPurgeBatch bounds the rows one delete statement removes (the
	// batch of the ports' Purge methods too).
	DefaultPurgeBatch = 1000
)

// MaintainerOptions configure a Maintainer. The zero value purges expired
// idempotency records once a minute and keeps dead letters.
type MaintainerOptions struct {
	// Interval is the pause between two rounds, varied by up to 10% either
	// way so that the maintainers of several processes drift apart.
	// Default DefaultMaintenanceInterval.
	Interval time.Duration
	// IdempotencyGrace keeps idempotency records this long past their
	// expiry. 0 (the default) purges them once expired, which changes no
	// outcome (Reserve treats an expired key as new); negative never
	// purges them.
	IdempotencyGrace time.Duration
	// DeadLetterRetention purges the dead letters last updated longer ago
	// than this (a requeue or a new failure counts as an update). 0 (the
	// default) keeps dead letters: they are what an operator inspects and
	// requeues (wharf outbox list --status dead), so deleting them is
	// opted into, e.g. 14 * 24 * time.Hour.
	DeadLetterRetention time.Duration
	// BatchSize bounds the rows one delete statement removes: each batch
	// is its own short statement, so the purge never holds many locks or a
	// large transaction. Default DefaultPurgeBatch.
	BatchSize int
	// BatchPause is the pause after each full batch. 0 (the default) pauses
	// as long as the batch took, which leaves the purge at most half of
	// one connection's time; negative does not pause.
	BatchPause time.Duration
	// OnRound, when set, is called after each round with its result (for
	// metrics). It must not block.
	OnRound func(MaintenanceRound)
	// Logger receives a line per round that purged something (info) or
	// failed (warn); nil means slog.Default at warn level and above.
	Logger *slog.Logger
}

// MaintenanceRound is the result of one round.
type MaintenanceRound struct {
	// Started is when the round began, by the driver's clock.
	Started time.Time
	// Duration is how long it took.
	Duration time.Duration
	// IdempotencyPurged counts the expired idempotency records deleted.
	IdempotencyPurged int64
	// DeadLettersPurged counts the dead letters deleted.
	DeadLettersPurged int64
	// Batches counts the delete statements.
	Batches int
	// Err is why the round stopped early, nil when it finished.
	Err error
}

// Maintainer keeps a driver's tables bounded: each round deletes the
// expired idempotency records and, when DeadLetterRetention is set, the
// dead letters older than it, in bounded batches with pauses between them.
// Nothing deletes rows unless the application runs one; running one in
// every process is safe (they share the work, and a row is deleted once).
type Maintainer struct {
	drv    *Driver
	opts   MaintainerOptions
	log    *slog.Logger
	active atomic.Bool
}

// NewMaintainer returns a maintainer of drv's tables. A nil driver or
// negative Interval or BatchSize is an error matching
// ports.ErrInvalidArgument.
func NewMaintainer(drv *Driver, opts MaintainerOptions) (*Maintainer, error) {
	switch {
	case drv == nil:
		return nil, check.Invalidf("wharf: new maintainer: nil driver")
	case opts.Interval < 0:
		return nil, check.Invalidf("wharf: new maintainer: Interval %v is negative; use 0 for the default (%v)", opts.Interval, DefaultMaintenanceInterval)
	case opts.BatchSize < 0:
		return nil, check.Invalidf("wharf: new maintainer: BatchSize %d is negative; use 0 for the default (%d)", opts.BatchSize, DefaultPurgeBatch)
	case opts.DeadLetterRetention < 0:
		return nil, check.Invalidf("wharf: new maintainer: DeadLetterRetention %v is negative; use 0 to keep dead letters", opts.DeadLetterRetention)
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultMaintenanceInterval
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultPurgeBatch
	}
	return &Maintainer{drv: drv, opts: opts, log: logging.OrDefault(opts.Logger)}, nil
}

var errMaintainerBusy = errors.New("wharf: Maintainer.Run is already running")

// Run runs a round at once and then one every Interval until ctx is
// cancelled, and returns nil then. A failed round is logged, reported to
// OnRound and retried at the next one; it never stops Run. One Run at a
// time: a second concurrent call returns an error.
func (m *Maintainer) Run(ctx context.Context) error {
	if !m.active.CompareAndSwap(false, true) {
		return errMaintainerBusy
	}
	defer m.active.Store(false)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		_, _ = m.RunOnce(ctx)
		timer.Reset(time.Duration(float64(m.opts.Interval) * (0.9 + 0.2*rand.Float64())))
	}
}

// RunOnce runs one round: it purges until no batch is full, pausing
// between batches, and returns the round's result and its error (also in
// the result). A cancelled ctx stops it between batches.
func (m *Maintainer) RunOnce(ctx context.Context) (MaintenanceRound, error) {
	now := core.Clock(m.drv.now).Now()
	start := time.Now()
	r := MaintenanceRound{Started: now}
	if m.opts.IdempotencyGrace >= 0 {
		cut := now.Add(-m.opts.IdempotencyGrace)
		r.IdempotencyPurged, r.Err = m.purge(ctx, &r, func(ctx context.Context) (int64, bool, error) {
			return m.drv.idem.PurgeBatch(ctx, cut, m.opts.BatchSize)
		})
	}
	if r.Err == nil && m.opts.DeadLetterRetention > 0 {
		cut := now.Add(-m.opts.DeadLetterRetention)
		r.DeadLettersPurged, r.Err = m.purge(ctx, &r, func(ctx context.Context) (int64, bool, error) {
			return m.drv.outbox.PurgeBatch(ctx, cut, m.opts.BatchSize)
		})
	}
	r.Duration = time.Since(start)
	m.report(ctx, r)
	return r, r.Err
}

// purge runs batch until it reports no more, pausing after each full one.
func (m *Maintainer) purge(ctx context.Context, r *MaintenanceRound, batch func(context.Context) (int64, bool, error)) (int64, error) {
	var total int64
	for {
		began := time.Now()
		n, more, err := batch(ctx)
		r.Batches++
		total += n
		if err != nil || !more {
			return total, err
		}
		pause := m.opts.BatchPause
		if pause == 0 {
			pause = time.Since(began)
		}
		if pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return total, ctx.Err()
			case <-t.C:
			}
		} else if err := ctx.Err(); err != nil {
			return total, err
		}
	}
}

func (m *Maintainer) report(ctx context.Context, r MaintenanceRound) {
	if m.opts.OnRound != nil {
		m.opts.OnRound(r)
	}
	attrs := []slog.Attr{
		slog.String("dialect", m.drv.name),
		slog.Int64("idempotency_purged", r.IdempotencyPurged),
		slog.Int64("dead_letters_purged", r.DeadLettersPurged),
		slog.Int("batches", r.Batches),
		slog.Duration("duration", r.Duration),
	}
	switch {
	case r.Err != nil && ctx.Err() != nil:
		// Stopped by the caller: not a failure.
	case r.Err != nil:
		m.log.LogAttrs(ctx, slog.LevelWarn, "wharf: maintenance round failed; retrying at the next round",
			append(attrs, slog.String("error", fmt.Sprint(r.Err)))...)
	case r.IdempotencyPurged > 0 || r.DeadLettersPurged > 0:
		m.log.LogAttrs(ctx, slog.LevelInfo, "wharf: maintenance round", attrs...)
	}
}
