package relay

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/ports"
)

// completeOutbox records Complete calls; the others are never called by
// the completer.
type completeOutbox struct {
	ports.Outbox
	mu        sync.Mutex
	completed map[string]bool
	calls     int
}

func (o *completeOutbox) Complete(_ context.Context, claims ...ports.Claim) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls++
	for _, c := range claims {
		o.completed[c.ID] = true
	}
	return nil
}

func (o *completeOutbox) done(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.completed[id]
}

// TestCompleterWritesWhatTheClaimLoopCollects: before a claim the claim
// loop asks the completer for the completions that are done (flushReq).
// What reaches the claim threshold is written at once; fewer, taken from the
// channel there, must still be written within CompleteInterval, even if
// no other completion ever arrives (a relay whose last messages waited for
// a later one held their keys' successors back for good).
func TestCompleterWritesWhatTheClaimLoopCollects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		n     int // completions handed over before the claim loop asks
		calls int // Complete calls expected right after the request
	}{
		// Concurrency 20: the claim threshold is 10, below the completion
		// batch (100), so only the request can write 15 at once.
		{"FewerThanTheClaimThresholdWaitForTheTimer", 3, 0},
		{"TheClaimThresholdIsWrittenAtOnce", 15, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Each round races the channel against the request (select
			// picks either), so that both ways in are taken.
			for round := range 20 {
				ob := &completeOutbox{completed: map[string]bool{}}
				hs := NewHandlers()
				require.NoError(t, hs.Handle("t", func(context.Context, ports.ClaimedMessage) error { return nil }, TopicOptions{}))
				r, err := New(ob, hs, Options{BatchSize: 100, Concurrency: 20, CompleteInterval: 20 * time.Millisecond})
				require.NoError(t, err)
				p := newPass(context.Background(), r)
				p.live.prev, p.live.next = &p.live, &p.live
				go p.completer()
				ids := make([]string, tt.n)
				for i := range ids {
					ids[i] = "m-" + string(rune('a'+round%26)) + "-" + string(rune('0'+i%10)) + string(rune('0'+i/10))
					d := &delivery{msg: ports.ClaimedMessage{ID: ids[i], Token: "tok-" + ids[i], Topic: "t"}, state: stCompleting,
						lockedUntil: time.Now().Add(time.Minute)}
					p.completions <- d
				}
				done := make(chan struct{})
				p.flushReq <- done
				<-done
				if tt.calls > 0 {
					ob.mu.Lock()
					calls := ob.calls
					ob.mu.Unlock()
					require.Equal(t, tt.calls, calls, "round %d: what reaches the claim threshold is written before the claim", round)
				}
				require.Eventually(t, func() bool {
					for _, id := range ids {
						if !ob.done(id) {
							return false
						}
					}
					return true
				}, 5*time.Second, time.Millisecond, "round %d: every completion is written", round)
				close(p.completions)
				<-p.completerDone
			}
		})
	}
}
