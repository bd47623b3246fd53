package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

func TestRelayDecide(t *testing.T) {
	t.Parallel()
	relayBackoff := Backoff{Initial: 10 * time.Second, Factor: 2, NoJitter: true}
	topicBackoff := Backoff{Initial: 3 * time.Second, Factor: 3, NoJitter: true}
	boom := errors.New("boom")
	plain := &route{topic: "t"}
	withTopic := &route{topic: "t", opts: TopicOptions{Backoff: topicBackoff}}
	capped := &route{topic: "t", opts: TopicOptions{MaxAttempts: 2}}
	unknown := &route{topic: "t", unknown: true}
	msg := func(attempts, max int) ports.ClaimedMessage {
		return ports.ClaimedMessage{ID: "m", Topic: "t", Attempts: attempts, MaxAttempts: max}
	}
	tests := []struct {
		name   string
		policy UnknownTopicPolicy
		rt     *route
		msg    ports.ClaimedMessage
		err    error
		want   decision
	}{
		{"FirstFailureUsesRelayBackoff", DeadLetterUnknown, plain, msg(1, 5), boom, decision{delay: 10 * time.Second}},
		{"ThirdFailureDoubles", DeadLetterUnknown, plain, msg(3, 5), boom, decision{delay: 40 * time.Second}},
		{"TopicBackoffWins", DeadLetterUnknown, withTopic, msg(2, 5), boom, decision{delay: 9 * time.Second}},
		{"RetryAfterWins", DeadLetterUnknown, withTopic, msg(2, 5), RetryAfter(boom, time.Minute), decision{delay: time.Minute}},
		{"FinalAttemptDeadLetters", DeadLetterUnknown, plain, msg(5, 5), boom, decision{dead: true}},
		{"FinalAttemptBeatsRetryAfter", DeadLetterUnknown, plain, msg(5, 5), RetryAfter(boom, time.Second), decision{dead: true}},
		{"TopicMaxAttemptsCaps", DeadLetterUnknown, capped, msg(2, 5), boom, decision{dead: true}},
		{"TopicMaxAttemptsBelowIsRetried", DeadLetterUnknown, capped, msg(1, 5), boom, decision{delay: 10 * time.Second}},
		{"PermanentDeadLettersAtOnce", DeadLetterUnknown, plain, msg(1, 5), fmt.Errorf("w: %w", Permanent(boom)), decision{dead: true}},
		{"PermanentBeatsRetryAfter", DeadLetterUnknown, plain, msg(1, 5), RetryAfter(Permanent(boom), time.Second), decision{dead: true}},
		{"UnknownTopicDeadLetters", DeadLetterUnknown, unknown, msg(1, 5), boom, decision{dead: true}},
		{"UnknownTopicLeftPendingIsRetried", LeaveUnknownPending, unknown, msg(1, 5), boom, decision{delay: 10 * time.Second}},
		{"UnknownTopicLeftPendingDiesOnFinalAttempt", LeaveUnknownPending, unknown, msg(5, 5), boom, decision{dead: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &Relay{opts: Options{Backoff: relayBackoff, UnknownTopic: tt.policy}}
			require.Equal(t, tt.want, r.decide(tt.rt, tt.msg, tt.err))
		})
	}
}

func TestRelayDefaultBackoffHasJitter(t *testing.T) {
	t.Parallel()
	r := &Relay{opts: Options{}}
	seen := map[time.Duration]bool{}
	for range 20 {
		d := r.decide(&route{}, ports.ClaimedMessage{Attempts: 1, MaxAttempts: 5}, errors.New("x")).delay
		require.InDelta(t, float64(time.Second), float64(d), float64(200*time.Millisecond), "1s ±20%%")
		seen[d] = true
	}
	require.Greater(t, len(seen), 1, "retries of several messages do not line up")
}

func TestLastErrorText(t *testing.T) {
	t.Parallel()
	require.Equal(t, "boom", lastErrorText(errors.New("boom")))
	require.Contains(t, lastErrorText(errors.New("")), "empty message", "never an empty last error")

	long := strings.Repeat("é", maxLastError) // 2 bytes per rune
	got := lastErrorText(errors.New(long))
	require.LessOrEqual(t, len(got), maxLastError)
	require.True(t, utf8.ValidString(got), "cut on a rune boundary")
	require.True(t, strings.HasSuffix(got, "[…]"))
}

type typedPayload struct {
	N int `json:"n"`
}

func TestHandleEventDecodeFailureIsPermanent(t *testing.T) {
	t.Parallel()
	ev := core.DefineEvent[typedPayload]("typed")
	hs := NewHandlers()
	var got []typedPayload
	require.NoError(t, HandleEvent(hs, ev, func(_ context.Context, p typedPayload, e ports.Event) error {
		got = append(got, p)
		require.Equal(t, "typed", e.Name)
		return nil
	}, TopicOptions{}))
	rt := hs.lookup(ports.ClaimedMessage{Topic: "typed", Kind: ports.KindEvent})
	require.NoError(t, rt.h(context.Background(), ports.ClaimedMessage{ID: "1", Topic: "typed", Payload: json.RawMessage(`{"n":7}`)}))
	require.Equal(t, []typedPayload{{N: 7}}, got)
	err := rt.h(context.Background(), ports.ClaimedMessage{ID: "2", Topic: "typed", Payload: json.RawMessage(`[1]`)})
	require.True(t, IsPermanent(err), "a payload that does not decode cannot be fixed by a retry")
	require.Len(t, got, 1, "the typed handler does not run")
}

func TestHandlersLookup(t *testing.T) {
	t.Parallel()
	hs := NewHandlers()
	require.NoError(t, hs.Handle("own", func(context.Context, ports.ClaimedMessage) error { return nil }, TopicOptions{}))
	var published []ports.Event
	require.NoError(t, hs.PublishEvents(ports.EventBusFunc(func(_ context.Context, evs ...ports.Event) error {
		published = append(published, evs...)
		return nil
	}), TopicOptions{}))
	require.Equal(t, "own", hs.lookup(ports.ClaimedMessage{Topic: "own", Kind: ports.KindEvent}).topic)
	bus := hs.lookup(ports.ClaimedMessage{Topic: "other", Kind: ports.KindEvent})
	require.False(t, bus.unknown, "an event without a handler goes to the bus")
	require.NoError(t, bus.h(context.Background(), ports.ClaimedMessage{ID: "e1", Topic: "other", Kind: ports.KindEvent, Payload: json.RawMessage(`{}`)}))
	require.Len(t, published, 1)
	require.Equal(t, "e1", published[0].ID)

	job := hs.lookup(ports.ClaimedMessage{Topic: "other", Kind: ports.KindJob})
	require.True(t, job.unknown, "a job is never sent to the bus")
	err := job.h(context.Background(), ports.ClaimedMessage{Topic: "other", Kind: ports.KindJob})
	require.ErrorIs(t, err, ErrNoHandler)
	require.ErrorContains(t, err, `"other"`)
}

func TestClaimThreshold(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ batch, conc, want int }{{100, 200, 100}, {100, 16, 8}, {2, 16, 2}, {100, 1, 1}, {100, 64, 32}, {10, 100, 10}} {
		r := &Relay{opts: Options{BatchSize: tt.batch, Concurrency: tt.conc}}
		require.Equal(t, tt.want, newPass(context.Background(), r).threshold, "batch %d concurrency %d", tt.batch, tt.conc)
	}
}

func TestClaimRetryDelay(t *testing.T) {
	t.Parallel()
	prev := time.Duration(0)
	for n := range 20 {
		d := claimRetryDelay(n)
		ceil := min(claimRetryBase<<min(n, 16), claimRetryCap)
		require.GreaterOrEqual(t, d, ceil/2, "attempt %d", n)
		require.LessOrEqual(t, d, ceil, "attempt %d", n)
		require.GreaterOrEqual(t, ceil, prev, "never shrinks")
		prev = ceil
	}
	require.Equal(t, claimRetryCap, min(claimRetryBase<<16, claimRetryCap))
}

type ctxKey struct{}

func TestHandlerCtx(t *testing.T) {
	t.Parallel()
	parent := context.WithoutCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	c := newHandlerCtx(parent)
	require.Equal(t, "v", c.Value(ctxKey{}), "values pass through")
	_, has := c.Deadline()
	require.False(t, has)
	require.NoError(t, c.Err())
	done := c.Done()
	select {
	case <-done:
		require.FailNow(t, "done before cancel")
	default:
	}

	// Derived contexts register through AfterFunc and follow the cancel.
	child, cancelChild := context.WithCancel(c)
	defer cancelChild()
	timed, cancelTimed := context.WithTimeout(c, time.Hour)
	defer cancelTimed()
	stopped, cancelStopped := context.WithCancel(c)
	cancelStopped() // unregisters: must not run after c's cancel
	ran := make(chan struct{})
	stop := context.AfterFunc(c, func() { close(ran) })

	c.cancel()
	c.cancel() // idempotent
	<-done
	<-child.Done()
	<-timed.Done()
	<-ran
	require.False(t, stop(), "already ran")
	require.ErrorIs(t, c.Err(), context.Canceled)
	require.ErrorIs(t, context.Cause(c), context.Canceled)
	require.ErrorIs(t, child.Err(), context.Canceled)
	require.ErrorIs(t, timed.Err(), context.Canceled)
	require.ErrorIs(t, stopped.Err(), context.Canceled)

	// Asked for Done only after the cancel, and derived after it.
	late := newHandlerCtx(parent)
	late.cancel()
	<-late.Done()
	lateChild, cancelLate := context.WithCancel(late)
	defer cancelLate()
	<-lateChild.Done()

	// stop before the cancel prevents the func.
	c2 := newHandlerCtx(parent)
	stop2 := context.AfterFunc(c2, func() { t.Error("stopped func ran") })
	require.True(t, stop2())
	require.False(t, stop2())
	c2.cancel()
	require.Empty(t, c2.funcs)
}
