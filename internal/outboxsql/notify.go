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
// carries this process's signals only, and relays poll for the rest.
func (o *Outbox) Notifications(ctx context.Context) (<-chan struct{}, error) {
	local := o.local.subscribe(ctx)
	remote, err := o.dialect.Listen(ctx, o.q)
	if err != nil {
		o.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox: notifications from other processes unavailable; relays poll for their messages",
			slog.String("table", o.q.Names().Raw), slog.String("error", err.Error()))
		if !errors.Is(err, ports.ErrNotificationsUnavailable) {
			err = fmt.Errorf("%w: %w", ports.ErrNotificationsUnavailable, err)
		}
		return local, fmt.Errorf("outbox notifications: %w", err)
	}
	if remote == nil {
		return local, nil
	}
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for local != nil || remote != nil {
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
			}
			Signal(out)
		}
	}()
	return out, nil
}
