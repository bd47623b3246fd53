package outboxsql

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAnnouncer checks the coalescing of the notifications that units of
// work leave to their commits: one Notify per announce while none is on
// its way, and a single one more for every announce made while one is.
func TestAnnouncer(t *testing.T) {
	t.Parallel()
	type fixture struct {
		a       *announcer
		calls   atomic.Int64
		started chan struct{} // a Notify began
		release chan struct{} // lets a Notify return
		cancel  context.CancelFunc
	}
	setup := func(t *testing.T, fail bool) *fixture {
		life, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		f := &fixture{started: make(chan struct{}, 100), release: make(chan struct{}, 100), cancel: cancel}
		f.a = &announcer{life: life, log: slog.New(slog.DiscardHandler), table: "t", notify: func(ctx context.Context) error {
			f.calls.Add(1)
			f.started <- struct{}{}
			select {
			case <-f.release:
			case <-ctx.Done():
			}
			if fail {
				return errors.New("notify failed")
			}
			return nil
		}}
		return f
	}
	awaitStart := func(t *testing.T, f *fixture) {
		t.Helper()
		select {
		case <-f.started:
		case <-time.After(10 * time.Second):
			require.FailNow(t, "no Notify started")
		}
	}
	awaitIdle := func(t *testing.T, f *fixture) {
		t.Helper()
		require.Eventually(t, func() bool {
			f.a.mu.Lock()
			defer f.a.mu.Unlock()
			return !f.a.running
		}, 10*time.Second, time.Millisecond, "the announcer goroutine ends once nothing is pending")
	}
	tests := []struct {
		name string
		fail bool
		run  func(t *testing.T, f *fixture)
	}{
		{"EachAnnounceWhileIdleNotifiesOnce", false, func(t *testing.T, f *fixture) {
			for i := 1; i <= 3; i++ {
				f.a.announce()
				awaitStart(t, f)
				f.release <- struct{}{}
				awaitIdle(t, f)
				require.Equal(t, int64(i), f.calls.Load())
			}
		}},
		{"AnnouncesDuringANotifyShareTheNextOne", false, func(t *testing.T, f *fixture) {
			f.a.announce()
			awaitStart(t, f)
			for range 50 {
				f.a.announce() // the first Notify is still on its way
			}
			f.release <- struct{}{}
			awaitStart(t, f)
			f.release <- struct{}{}
			awaitIdle(t, f)
			require.Equal(t, int64(2), f.calls.Load(), "one Notify, then one for all 50 announces made meanwhile")
		}},
		{"AFailedNotifyDoesNotStopTheNext", true, func(t *testing.T, f *fixture) {
			f.a.announce()
			awaitStart(t, f)
			f.release <- struct{}{}
			awaitIdle(t, f)
			f.a.announce()
			awaitStart(t, f)
			f.release <- struct{}{}
			awaitIdle(t, f)
			require.Equal(t, int64(2), f.calls.Load())
		}},
		{"NothingIsSentOnceTheOutboxIsClosed", false, func(t *testing.T, f *fixture) {
			f.a.announce()
			awaitStart(t, f)
			f.a.announce()
			f.cancel() // the driver closes while a Notify is on its way
			f.release <- struct{}{}
			awaitIdle(t, f)
			require.Equal(t, int64(1), f.calls.Load(), "the pending announce is dropped")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, setup(t, tt.fail))
		})
	}
}
