package outboxsql

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wharf-go/wharf/ports"
)

var _ ports.OutboxNotifier = (*Outbox)(nil)

// wakeups fans out a signal to the relays of this process that wait on an
// outbox (and on its WithDB copies).
type wakeups struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func newWakeups() *wakeups { return &wakeups{subs: map[chan struct{}]struct{}{}} }

// subscribe returns a channel (buffer one, coalesced) that broadcast
// signals until ctx is done; then it is closed.
func (w *wakeups) subscribe(ctx context.Context) chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.subs[ch] = struct{}{}
	w.mu.Unlock()
	context.AfterFunc(ctx, func() {
		w.mu.Lock()
		delete(w.subs, ch)
		close(ch)
		w.mu.Unlock()
	})
	return ch
}

func (w *wakeups) broadcast() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.subs {
		Signal(ch)
	}
}

// Signal sends a coalesced wake-up on ch.
func Signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Committed wakes this process's relays: messages were just committed to
// the outbox. Enqueue on the root handle calls it; a unit of work calls it
// after committing a transaction that enqueued, on the transaction's copy,
// which then also sends the database notification its enqueues left to
// the commit (see AnnounceCommit).
func (o *Outbox) Committed() {
	if o.stamped != nil {
		// A late commit: its messages may lie behind the claim cursors.
		if at := o.stamped.Load(); at != 0 && o.now().Sub(time.Unix(0, at)) > CursorWindow {
			o.cur.rewind(time.Unix(0, at))
		}
	}
	o.local.broadcast()
	o.announceCommit()
}

// Notifications implements ports.OutboxNotifier. The channel receives a
// value when this process commits messages through the outbox (at once,
// on every dialect) and, where the database can tell (PostgreSQL
// LISTEN/NOTIFY), when another process does. When the database's
// notifications cannot be set up, a warning is logged, and the channel is
// returned with an error matching ports.ErrNotificationsUnavailable: it
// carries this process's signals, and relays poll for the rest. If the
// cause may pass (the server could not be reached, say), the outbox keeps
// trying in the background, with backoff up to maxRelistenDelay, and from
// its first success the channel carries other processes' signals too;
// a setup that cannot work (the probe found that notifications do not
// arrive, an invalid Listen URL) is not retried.
func (o *Outbox) Notifications(ctx context.Context) (<-chan struct{}, error) {
	local := o.local.subscribe(ctx)
	remote, err := o.dialect.Listen(ctx, o.q)
	relisten := false
	if err != nil {
		relisten = !errors.Is(err, ports.ErrNotificationsUnavailable) && !errors.Is(err, ports.ErrInvalidArgument) && ctx.Err() == nil
		o.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox: notifications from other processes unavailable; relays poll for their messages",
			slog.String("table", o.q.Names().Raw), slog.Bool("retrying", relisten), slog.String("error", err.Error()))
		if !errors.Is(err, ports.ErrNotificationsUnavailable) {
			err = fmt.Errorf("%w: %w", ports.ErrNotificationsUnavailable, err)
		}
		err = fmt.Errorf("outbox notifications: %w", err)
		if !relisten {
			return local, err
		}
	}
	if remote == nil && !relisten {
		return local, nil
	}
	out := make(chan struct{}, 1)
	go o.merge(ctx, out, local, remote, relisten)
	return out, err
}

// Delays between the background attempts to set up notifications that
// failed at first (see Notifications).
const (
	minRelistenDelay = time.Second
	maxRelistenDelay = 30 * time.Second
)

// merge forwards local's and remote's signals to out until both have
// closed, then closes out. With relisten (remote is nil) it retries Listen
// until it succeeds, fails for good or ctx ends.
func (o *Outbox) merge(ctx context.Context, out chan struct{}, local, remote <-chan struct{}, relisten bool) {
	defer close(out)
	// Retries end with ctx or when the outbox is closed (Driver.Close): a
	// connection opened after the close would outlive the driver.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(o.cur.life, cancel)()
	var (
		retry    <-chan time.Time
		listened chan (<-chan struct{}) // the result of a Listen in flight
		delay    = minRelistenDelay
		done     = lctx.Done()
	)
	if relisten {
		retry = time.After(delay)
	}
	for local != nil || remote != nil || retry != nil || listened != nil {
		select {
		case _, ok := <-local:
			if !ok {
				local = nil
				continue
			}
		case _, ok := <-remote:
			if !ok {
				remote = nil
				continue
			}
		case <-done:
			done, retry = nil, nil // the channels close on their own
			continue
		case <-retry:
			retry = nil
			listened = make(chan (<-chan struct{}), 1)
			go func(res chan<- (<-chan struct{})) {
				ch, err := o.dialect.Listen(lctx, o.q)
				if err != nil && lctx.Err() == nil {
					permanent := errors.Is(err, ports.ErrNotificationsUnavailable) || errors.Is(err, ports.ErrInvalidArgument)
					level := slog.LevelDebug // the first failure was logged at Warn
					if permanent {
						level = slog.LevelWarn // a new reason, and the last word
					}
					o.cfg.Logger.LogAttrs(ctx, level, "outbox: notifications still unavailable",
						slog.String("table", o.q.Names().Raw), slog.Bool("retrying", !permanent), slog.String("error", err.Error()))
					if permanent {
						close(res) // no more attempts
						return
					}
				}
				res <- ch
			}(listened)
			continue
		case ch, ok := <-listened:
			listened = nil
			switch {
			case !ok || lctx.Err() != nil:
			case ch == nil:
				delay = min(2*delay, maxRelistenDelay)
				retry = time.After(delay)
			default:
				remote = ch
				o.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "outbox: notifications from other processes available again",
					slog.String("table", o.q.Names().Raw))
				Signal(out) // messages may have been committed meanwhile
			}
			continue
		}
		Signal(out)
	}
}
