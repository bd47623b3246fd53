package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

const awaitTimeout = 30 * time.Second

func okHandler(context.Context, ports.ClaimedMessage) error { return nil }

func handlersFor(t *testing.T, topics ...string) *relay.Handlers {
	t.Helper()
	hs := relay.NewHandlers()
	for _, topic := range topics {
		require.NoError(t, hs.Handle(topic, okHandler, relay.TopicOptions{}))
	}
	return hs
}

func TestNewRelayRejectsInvalidOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts relay.Options
		want string
	}{
		{"NegativeBatchSize", relay.Options{BatchSize: -1}, "BatchSize"},
		{"NegativeConcurrency", relay.Options{Concurrency: -1}, "Concurrency"},
		{"NegativeLease", relay.Options{Lease: -time.Second}, "Lease"},
		{"NegativePollInterval", relay.Options{PollInterval: -time.Second}, "PollInterval"},
		{"MaxPollIntervalBelowPollInterval", relay.Options{PollInterval: time.Second, MaxPollInterval: time.Millisecond}, "MaxPollInterval"},
		{"NegativeShutdownTimeout", relay.Options{ShutdownTimeout: -1}, "ShutdownTimeout"},
		{"NegativeCompleteBatchSize", relay.Options{CompleteBatchSize: -1}, "CompleteBatchSize"},
		{"NegativeCompleteInterval", relay.Options{CompleteInterval: -1}, "CompleteInterval"},
		{"NegativeMaxMessages", relay.Options{MaxMessages: -1}, "MaxMessages"},
		{"UnknownPolicy", relay.Options{UnknownTopic: 7}, "UnknownTopic"},
		{"InvalidBackoff", relay.Options{Backoff: relay.Backoff{Factor: 0.5}}, "Factor"},
		{"EmptyTopic", relay.Options{Topics: []string{"a", ""}}, "Topics[1]"},
		{"OverlongTopic", relay.Options{Topics: []string{strings.Repeat("t", 256)}}, "Topics[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := relay.New(&memOutbox{}, handlersFor(t, "a"), tt.opts)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, "relay: new")
			require.Nil(t, r)
		})
	}
}

func TestNewRelayFillsDefaults(t *testing.T) {
	t.Parallel()
	r, err := relay.New(&memOutbox{}, handlersFor(t, "a"), relay.Options{})
	require.NoError(t, err)
	o := r.Options()
	require.Equal(t, relay.DefaultBatchSize, o.BatchSize)
	require.Equal(t, relay.DefaultConcurrency, o.Concurrency)
	require.Equal(t, relay.DefaultLease, o.Lease)
	require.Equal(t, relay.DefaultPollInterval, o.PollInterval)
	require.Equal(t, relay.DefaultMaxPollInterval, o.MaxPollInterval)
	require.Equal(t, relay.DefaultShutdownTimeout, o.ShutdownTimeout)
	require.Equal(t, relay.DefaultBatchSize, o.CompleteBatchSize, "CompleteBatchSize defaults to BatchSize")
	require.Equal(t, relay.DefaultCompleteInterval, o.CompleteInterval)
	require.Equal(t, relay.DeadLetterUnknown, o.UnknownTopic)
	require.NotNil(t, o.Logger, "a nil logger means slog.Default at warn and above")

	r, err = relay.New(&memOutbox{}, handlersFor(t, "a"), relay.Options{PollInterval: 10 * time.Second, BatchSize: 7})
	require.NoError(t, err)
	require.Equal(t, 10*time.Second, r.Options().MaxPollInterval, "MaxPollInterval is never below PollInterval")
	require.Equal(t, 7, r.Options().CompleteBatchSize)
	require.Equal(t, 14, r.Options().Concurrency, "Concurrency defaults to twice BatchSize")
	require.Equal(t, 2*relay.DefaultBatchSize, relay.DefaultConcurrency)
}

func TestNewRelayRejectsMissingParts(t *testing.T) {
	t.Parallel()
	_, err := relay.New(nil, handlersFor(t, "a"), relay.Options{})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	_, err = relay.New(&memOutbox{}, nil, relay.Options{})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	_, err = relay.New(&memOutbox{}, relay.NewHandlers(), relay.Options{})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	require.ErrorContains(t, err, "empty")
}

type busFunc = ports.EventBusFunc

func TestHandlersRejectInvalidRegistrations(t *testing.T) {
	t.Parallel()
	bus := busFunc(func(context.Context, ...ports.Event) error { return nil })
	ev := core.DefineEvent[struct{}]("ev")
	tests := []struct {
		name     string
		register func(hs *relay.Handlers) error
	}{
		{"EmptyTopic", func(hs *relay.Handlers) error { return hs.Handle("", okHandler, relay.TopicOptions{}) }},
		{"OverlongTopic", func(hs *relay.Handlers) error {
			return hs.Handle(strings.Repeat("t", 256), okHandler, relay.TopicOptions{})
		}},
		{"NilHandler", func(hs *relay.Handlers) error { return hs.Handle("t", nil, relay.TopicOptions{}) }},
		{"DuplicateTopic", func(hs *relay.Handlers) error {
			_ = hs.Handle("t", okHandler, relay.TopicOptions{})
			return hs.Handle("t", okHandler, relay.TopicOptions{})
		}},
		{"NegativeTopicMaxAttempts", func(hs *relay.Handlers) error {
			return hs.Handle("t", okHandler, relay.TopicOptions{MaxAttempts: -1})
		}},
		{"NegativeTopicTimeout", func(hs *relay.Handlers) error {
			return hs.Handle("t", okHandler, relay.TopicOptions{Timeout: -1})
		}},
		{"InvalidTopicBackoff", func(hs *relay.Handlers) error {
			return hs.Handle("t", okHandler, relay.TopicOptions{Backoff: relay.Backoff{Jitter: 2}})
		}},
		{"EmptyEventName", func(hs *relay.Handlers) error {
			// DefineEvent("") does not panic; registering it is the error.
			return relay.HandleEvent(hs, core.DefineEvent[struct{}](""),
				func(context.Context, struct{}, ports.Event) error { return nil }, relay.TopicOptions{})
		}},
		{"NilTypedHandler", func(hs *relay.Handlers) error { return relay.HandleEvent(hs, ev, nil, relay.TopicOptions{}) }},
		{"TypedTopicTwice", func(hs *relay.Handlers) error {
			_ = hs.Handle("ev", okHandler, relay.TopicOptions{})
			return relay.HandleEvent(hs, ev, func(context.Context, struct{}, ports.Event) error { return nil }, relay.TopicOptions{})
		}},
		{"NilBus", func(hs *relay.Handlers) error { return hs.PublishEvents(nil, relay.TopicOptions{}) }},
		{"BusTwice", func(hs *relay.Handlers) error {
			_ = hs.PublishEvents(bus, relay.TopicOptions{})
			return hs.PublishEvents(bus, relay.TopicOptions{})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.ErrorIs(t, tt.register(relay.NewHandlers()), ports.ErrInvalidArgument)
		})
	}
	t.Run("NilSet", func(t *testing.T) {
		t.Parallel()
		var hs *relay.Handlers
		for _, err := range []error{
			hs.Handle("t", okHandler, relay.TopicOptions{}),
			relay.HandleEvent(hs, ev, func(context.Context, struct{}, ports.Event) error { return nil }, relay.TopicOptions{}),
			hs.PublishEvents(bus, relay.TopicOptions{}),
		} {
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, "NewHandlers")
		}
		require.Empty(t, hs.Topics())
	})
}

func TestZeroErrorValuesHaveText(t *testing.T) {
	t.Parallel()
	require.Equal(t, "permanent error", (&relay.PermanentError{}).Error())
	require.Equal(t, "retry after 2s", (&relay.RetryAfterError{Delay: 2 * time.Second}).Error())
	require.Equal(t, "boom", (&relay.PermanentError{Err: errors.New("boom")}).Error())
}

func TestNewRelaySealsHandlers(t *testing.T) {
	t.Parallel()
	hs := handlersFor(t, "a")
	_, err := relay.New(&memOutbox{}, hs, relay.Options{})
	require.NoError(t, err)
	require.ErrorContains(t, hs.Handle("b", okHandler, relay.TopicOptions{}), "before New")
	require.ErrorContains(t, hs.PublishEvents(busFunc(func(context.Context, ...ports.Event) error { return nil }), relay.TopicOptions{}), "before New")
	_, err = relay.New(&memOutbox{}, hs, relay.Options{})
	require.NoError(t, err, "one handler set may serve several relays")
	require.Equal(t, []string{"a"}, hs.Topics())
}

func TestRelayClaimTopics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		handled  []string
		catchAll bool
		opts     relay.Options
		want     []string
		wantErr  bool
	}{
		{name: "DeadLetterClaimsEverything", handled: []string{"b", "a"}, want: nil},
		{name: "DeadLetterKeepsTopics", handled: []string{"a"}, opts: relay.Options{Topics: []string{"a", "x"}}, want: []string{"a", "x"}},
		{name: "LeavePendingClaimsHandledTopics", handled: []string{"b", "a"},
			opts: relay.Options{UnknownTopic: relay.LeaveUnknownPending}, want: []string{"a", "b"}},
		{name: "LeavePendingNarrowsTopics", handled: []string{"a", "b"},
			opts: relay.Options{UnknownTopic: relay.LeaveUnknownPending, Topics: []string{"b", "x"}}, want: []string{"b"}},
		{name: "LeavePendingWithoutHandledTopic", handled: []string{"a"},
			opts: relay.Options{UnknownTopic: relay.LeaveUnknownPending, Topics: []string{"x"}}, wantErr: true},
		{name: "LeavePendingWithCatchAllClaimsEverything", handled: []string{"a"}, catchAll: true,
			opts: relay.Options{UnknownTopic: relay.LeaveUnknownPending}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := handlersFor(t, tt.handled...)
			if tt.catchAll {
				require.NoError(t, hs.PublishEvents(busFunc(func(context.Context, ...ports.Event) error { return nil }), relay.TopicOptions{}))
			}
			r, err := relay.New(&memOutbox{}, hs, tt.opts)
			if tt.wantErr {
				require.ErrorIs(t, err, ports.ErrInvalidArgument)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, r.ClaimTopics())
		})
	}
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	base := errors.New("poison")
	require.NoError(t, relay.Permanent(nil))
	require.False(t, relay.IsPermanent(nil))
	require.False(t, relay.IsPermanent(base))
	p := relay.Permanent(base)
	require.True(t, relay.IsPermanent(p))
	require.True(t, relay.IsPermanent(fmt.Errorf("handler: %w", p)), "detected through wrapping")
	require.ErrorIs(t, p, base, "the cause stays reachable")
	require.Equal(t, "poison", p.Error(), "the text is the cause's")
	var pe *relay.PermanentError
	require.ErrorAs(t, fmt.Errorf("x: %w", p), &pe)
	require.Equal(t, base, pe.Err)
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	base := errors.New("rate limited")
	require.NoError(t, relay.RetryAfter(nil, time.Second))
	_, ok := relay.RetryAfterDelay(base)
	require.False(t, ok)
	_, ok = relay.RetryAfterDelay(nil)
	require.False(t, ok)

	err := fmt.Errorf("call: %w", relay.RetryAfter(base, 42*time.Second))
	d, ok := relay.RetryAfterDelay(err)
	require.True(t, ok, "detected through wrapping")
	require.Equal(t, 42*time.Second, d)
	require.ErrorIs(t, err, base)
	require.Equal(t, "call: rate limited", err.Error())

	d, ok = relay.RetryAfterDelay(relay.RetryAfter(base, -time.Second))
	require.True(t, ok)
	require.Zero(t, d, "a negative delay counts as zero")

	outer := relay.RetryAfter(fmt.Errorf("w: %w", relay.RetryAfter(base, time.Second)), time.Minute)
	d, _ = relay.RetryAfterDelay(outer)
	require.Equal(t, time.Minute, d, "the outermost request wins")
}

func TestPanicErrorText(t *testing.T) {
	t.Parallel()
	err := &relay.PanicError{Value: "boom", Stack: []byte("goroutine 1 [running]:")}
	require.Equal(t, "panic: boom", err.Error(), "the text holds the value, not the stack")
}

func TestEffectivelyOnceRejectsBadArguments(t *testing.T) {
	t.Parallel()
	var store ports.Idempotency = nopIdempotency{}
	txStore := func(int) ports.Idempotency { return store }
	txHandler := func(context.Context, int, ports.ClaimedMessage) error { return nil }
	tests := []struct {
		name string
		wrap func() (relay.Handler, error)
		want string
	}{
		{"EmptyNamespace", func() (relay.Handler, error) {
			return relay.EffectivelyOnce(store, "", okHandler, relay.EffectivelyOnceOptions{})
		}, `relay: EffectivelyOnce: empty namespace; name the consumer, e.g. "billing.order-placed"`},
		{"OverlongNamespace", func() (relay.Handler, error) {
			return relay.EffectivelyOnce(store, strings.Repeat("n", 256), okHandler, relay.EffectivelyOnceOptions{})
		}, "namespace is 256 characters"},
		{"NilStore", func() (relay.Handler, error) {
			return relay.EffectivelyOnce(nil, "ns", okHandler, relay.EffectivelyOnceOptions{})
		}, "nil argument"},
		{"NilHandler", func() (relay.Handler, error) {
			return relay.EffectivelyOnce(store, "ns", nil, relay.EffectivelyOnceOptions{})
		}, "nil argument"},
		{"NegativeLease", func() (relay.Handler, error) {
			return relay.EffectivelyOnce(store, "ns", okHandler, relay.EffectivelyOnceOptions{Lease: -time.Second})
		}, "must not be negative"},
		{"NegativeTTL", func() (relay.Handler, error) {
			return relay.EffectivelyOnce(store, "ns", okHandler, relay.EffectivelyOnceOptions{TTL: -time.Second})
		}, "must not be negative"},
		{"TxNilUnitOfWork", func() (relay.Handler, error) {
			return relay.EffectivelyOnceTx[int](nil, txStore, "ns", txHandler, relay.EffectivelyOnceOptions{})
		}, "relay: EffectivelyOnceTx: nil argument"},
		{"TxEmptyNamespace", func() (relay.Handler, error) {
			return relay.EffectivelyOnceTx[int](nopUnitOfWork{}, txStore, "", txHandler, relay.EffectivelyOnceOptions{})
		}, "relay: EffectivelyOnceTx: empty namespace"},
		{"TxNilStore", func() (relay.Handler, error) {
			return relay.EffectivelyOnceTx[int](nopUnitOfWork{}, nil, "ns", txHandler, relay.EffectivelyOnceOptions{})
		}, "nil argument"},
		{"TxNilHandler", func() (relay.Handler, error) {
			return relay.EffectivelyOnceTx[int](nopUnitOfWork{}, txStore, "ns", nil, relay.EffectivelyOnceOptions{})
		}, "nil argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := tt.wrap()
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tt.want)
			require.Nil(t, h)
		})
	}
	t.Run("ValidArguments", func(t *testing.T) {
		t.Parallel()
		h, err := relay.EffectivelyOnce(store, "ns", okHandler, relay.EffectivelyOnceOptions{})
		require.NoError(t, err)
		require.NotNil(t, h)
		h, err = relay.EffectivelyOnceTx[int](nopUnitOfWork{}, txStore, "ns", txHandler, relay.EffectivelyOnceOptions{})
		require.NoError(t, err)
		require.NotNil(t, h)
	})
}

type nopIdempotency struct{}

func (nopIdempotency) Reserve(context.Context, ports.ReserveRequest) (ports.Reservation, error) {
	return ports.Reservation{}, errors.New("nop")
}
func (nopIdempotency) Complete(context.Context, ports.Reservation, json.RawMessage) error { return nil }
func (nopIdempotency) Fail(context.Context, ports.Reservation) error                      { return nil }

// nopUnitOfWork is a ports.UnitOfWork[int] that never runs fn: the argument
// checks of EffectivelyOnceTx need a non-nil one.
type nopUnitOfWork struct{}

func (nopUnitOfWork) Transaction(context.Context, func(context.Context, int) error) error {
	return errors.New("nop")
}

// runRelay runs r until the returned stop is called.
func runRelay(t *testing.T, r *relay.Relay) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(awaitTimeout):
				err = errors.New("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// delivered returns an observer and a channel that receives the ID of every
// delivered message.
func delivered() (relay.Observer, <-chan string) {
	ch := make(chan string, 100)
	return func(_ context.Context, o relay.Observation) {
		if o.Outcome == relay.OutcomeDelivered {
			ch <- o.MessageID
		}
	}, ch
}

func awaitID(t *testing.T, ch <-chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		require.Equal(t, want, got)
	case <-time.After(awaitTimeout):
		require.FailNow(t, "timed out waiting for delivery of "+want)
	}
}

func awaitClaim(t *testing.T, claims <-chan int) int {
	t.Helper()
	select {
	case n := <-claims:
		return n
	case <-time.After(awaitTimeout):
		require.FailNow(t, "timed out waiting for a claim")
		return 0
	}
}

func TestRunWakesOnNotification(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{claims: make(chan int, 1), notify: make(chan struct{}, 1)}
	obs, got := delivered()
	r, err := relay.New(notifyingOutbox{ob}, handlersFor(t, "t"), relay.Options{
		PollInterval: time.Hour, MaxPollInterval: time.Hour, Observer: obs, // only a notification can wake it
	})
	require.NoError(t, err)
	stop := runRelay(t, r)
	require.Zero(t, awaitClaim(t, ob.claims), "the first claim finds nothing")
	id := ob.add("t")
	ob.notify <- struct{}{}
	awaitID(t, got, id)
	require.NoError(t, stop())
	require.Equal(t, "delivered", ob.state(id))
}

func TestRunPollsWhenNotificationsFail(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{claims: make(chan int, 1), notifyErr: errors.New("LISTEN failed")}
	obs, got := delivered()
	r, err := relay.New(notifyingOutbox{ob}, handlersFor(t, "t"), relay.Options{
		PollInterval: time.Millisecond, MaxPollInterval: 2 * time.Millisecond, Observer: obs,
	})
	require.NoError(t, err)
	stop := runRelay(t, r)
	require.Zero(t, awaitClaim(t, ob.claims))
	id := ob.add("t")
	awaitID(t, got, id)
	require.NoError(t, stop())
}

// TestRunKeepsPartialNotifications: notifications unavailable for other
// processes (ports.ErrNotificationsUnavailable with a channel) still wake
// the relay for this process's commits, and OnFailure hears of it.
func TestRunKeepsPartialNotifications(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{claims: make(chan int, 1), notify: make(chan struct{}),
		notifyErr: fmt.Errorf("%w: the probe never came back", ports.ErrNotificationsUnavailable)}
	obs, got := delivered()
	failures := make(chan relay.Failure, 1)
	r, err := relay.New(notifyingOutbox{ob}, handlersFor(t, "t"), relay.Options{
		PollInterval: time.Hour, Observer: obs,
		OnFailure: func(_ context.Context, f relay.Failure) { failures <- f },
	})
	require.NoError(t, err)
	stop := runRelay(t, r)
	f := <-failures
	require.Equal(t, "notify", f.Op)
	require.ErrorIs(t, f.Err, ports.ErrNotificationsUnavailable)
	require.Zero(t, awaitClaim(t, ob.claims), "the first claim finds nothing; then the relay waits an hour")
	id := ob.add("t")
	ob.notify <- struct{}{}
	awaitID(t, got, id)
	require.NoError(t, stop())
}

func TestRelayRunsOnePassAtATime(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{}
	id := ob.add("t")
	started, release := make(chan struct{}), make(chan struct{})
	hs := relay.NewHandlers()
	require.NoError(t, hs.Handle("t", func(context.Context, ports.ClaimedMessage) error {
		close(started)
		<-release
		return nil
	}, relay.TopicOptions{}))
	r, err := relay.New(ob, hs, relay.Options{})
	require.NoError(t, err)
	stop := runRelay(t, r)
	<-started
	_, err = r.Drain(context.Background())
	require.ErrorContains(t, err, "already running")
	require.ErrorContains(t, r.Run(context.Background()), "already running")
	close(release)
	require.NoError(t, stop())
	require.Equal(t, "delivered", ob.state(id))
	res, err := r.Drain(context.Background())
	require.NoError(t, err, "after Run returned, the relay can run again")
	require.Equal(t, relay.DrainResult{}, res)
}

func TestUnknownTopicPolicyString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "dead-letter", relay.DeadLetterUnknown.String())
	require.Equal(t, "leave-pending", relay.LeaveUnknownPending.String())
	require.Equal(t, "UnknownTopicPolicy(9)", relay.UnknownTopicPolicy(9).String())
}

// conflict is a claim error as providers report a deadlock.
var conflict = fmt.Errorf("claim: deadlock found when trying to get lock: %w: %w", ports.ErrDeadlock, ports.ErrRetryable)

func addN(ob *memOutbox, topic string, n int) {
	for range n {
		ob.add(topic)
	}
}

func TestDrainRetriesRetryableClaimErrors(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{claimErrs: []error{conflict, conflict, nil, conflict, nil, nil, conflict, conflict, conflict}}
	addN(ob, "t", 250)
	var logs bytes.Buffer // written only by Drain's goroutines, read after it returned
	var failures atomic.Int64
	r, err := relay.New(ob, handlersFor(t, "t"), relay.Options{BatchSize: 10,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		OnFailure: func(_ context.Context, f relay.Failure) {
			if f.Op == "claim" && errors.Is(f.Err, ports.ErrRetryable) {
				failures.Add(1)
			}
		}})
	require.NoError(t, err)
	res, err := r.Drain(context.Background())
	require.NoError(t, err, "transient claim conflicts do not end a Drain")
	require.Equal(t, relay.DrainResult{Claimed: 250, Delivered: 250}, res)
	require.Equal(t, 250, ob.count("delivered"))
	require.EqualValues(t, 6, failures.Load(), "OnFailure sees every failed claim")
	require.Equal(t, 3, strings.Count(logs.String(), "level=WARN msg=\"relay: claim hit a transient error (conflict, busy or unreachable database); retrying\""),
		"one warning per run of consecutive failures: %s", logs.String())
	require.Equal(t, 1, strings.Count(logs.String(), "msg=\"relay: claims succeed again\" failures=2"),
		"the end of a run of several failures is logged with their number: %s", logs.String())
}

func TestDrainGivesUpOnPersistentClaimConflicts(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{claimErr: conflict}
	addN(ob, "t", 3)
	r, err := relay.New(ob, handlersFor(t, "t"), relay.Options{})
	require.NoError(t, err)
	res, err := r.Drain(context.Background())
	require.ErrorIs(t, err, ports.ErrRetryable)
	require.ErrorContains(t, err, "relay: drain: 9 consecutive claims failed")
	require.Equal(t, relay.DrainResult{}, res)
	calls, _ := ob.claimStats()
	require.Equal(t, 9, calls, "the first claim and 8 retries")

	// A conflict only part of the time is not persistent: the count restarts
	// after every successful claim.
	ob = &memOutbox{}
	for range 3 {
		ob.claimErrs = append(ob.claimErrs, conflict, conflict, conflict, conflict, conflict, conflict, nil)
	}
	addN(ob, "t", 25)
	r, err = relay.New(ob, handlersFor(t, "t"), relay.Options{BatchSize: 10})
	require.NoError(t, err)
	res, err = r.Drain(context.Background())
	require.NoError(t, err)
	require.Equal(t, 25, res.Delivered)
}

func TestDrainEndsOnOtherClaimErrors(t *testing.T) {
	t.Parallel()
	broken := errors.New("relation outbox_messages does not exist")
	ob := &memOutbox{claimErrs: []error{nil, broken}}
	addN(ob, "t", 30)
	r, err := relay.New(ob, handlersFor(t, "t"), relay.Options{BatchSize: 10})
	require.NoError(t, err)
	res, err := r.Drain(context.Background())
	require.ErrorIs(t, err, broken)
	require.NotErrorIs(t, err, ports.ErrRetryable)
	require.Equal(t, relay.DrainResult{Claimed: 10, Delivered: 10}, res, "what was claimed is still delivered")
	calls, _ := ob.claimStats()
	require.Equal(t, 2, calls, "not retried")
}

func TestRunRetriesRetryableClaimErrors(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{claimErrs: []error{conflict, conflict, conflict}}
	id := ob.add("t")
	obs, got := delivered()
	r, err := relay.New(ob, handlersFor(t, "t"), relay.Options{
		PollInterval: time.Hour, MaxPollInterval: time.Hour, Observer: obs, // a conflict must not cost an idle interval
	})
	require.NoError(t, err)
	stop := runRelay(t, r)
	awaitID(t, got, id)
	require.NoError(t, stop())
	calls, _ := ob.claimStats()
	require.GreaterOrEqual(t, calls, 4)
}

func TestDrainDefaultsClaimFullBatches(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{}
	addN(ob, "t", 1000)
	r, err := relay.New(ob, handlersFor(t, "t"), relay.Options{})
	require.NoError(t, err)
	res, err := r.Drain(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1000, res.Delivered)
	_, limits := ob.claimStats()
	for i, l := range limits {
		require.Equal(t, relay.DefaultBatchSize, l, "claim %d of %v: with the defaults every claim asks for a full batch", i, limits)
	}
	require.Len(t, limits, 11, "ten full claims and the empty one that ends the pass")
}

func TestDrainRespectsConcurrency(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{}
	addN(ob, "t", 60)
	var mu sync.Mutex
	running, peak := 0, 0
	hs := relay.NewHandlers()
	require.NoError(t, hs.Handle("t", func(context.Context, ports.ClaimedMessage) error {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		time.Sleep(time.Millisecond) // work, not synchronisation
		mu.Lock()
		running--
		mu.Unlock()
		return nil
	}, relay.TopicOptions{}))
	r, err := relay.New(ob, hs, relay.Options{BatchSize: 10, Concurrency: 3})
	require.NoError(t, err)
	res, err := r.Drain(context.Background())
	require.NoError(t, err)
	require.Equal(t, 60, res.Delivered)
	require.LessOrEqual(t, peak, 3)
	_, limits := ob.claimStats()
	for _, l := range limits {
		require.LessOrEqual(t, l, 3, "a claim never asks for more than the free slots")
	}
}

// deadlineOutbox records, per operation, the time left before the deadline
// of every ctx the relay passes (or -1 when it has none).
type deadlineOutbox struct {
	*memOutbox
	mu   sync.Mutex
	left map[string][]time.Duration
}

func (o *deadlineOutbox) record(op string, ctx context.Context) {
	left := time.Duration(-1)
	if d, ok := ctx.Deadline(); ok {
		left = time.Until(d)
	}
	o.mu.Lock()
	o.left[op] = append(o.left[op], left)
	o.mu.Unlock()
}

func (o *deadlineOutbox) Complete(ctx context.Context, claims ...ports.Claim) error {
	o.record("complete", ctx)
	return o.memOutbox.Complete(ctx, claims...)
}

func (o *deadlineOutbox) Retry(ctx context.Context, c ports.Claim, opts ports.RetryOptions) error {
	o.record("retry", ctx)
	return o.memOutbox.Retry(ctx, c, opts)
}

func (o *deadlineOutbox) DeadLetter(ctx context.Context, c ports.Claim, reason string) error {
	o.record("dead-letter", ctx)
	return o.memOutbox.DeadLetter(ctx, c, reason)
}

func (o *deadlineOutbox) Extend(ctx context.Context, c ports.Claim, lease time.Duration) (time.Time, error) {
	o.record("extend", ctx)
	return o.memOutbox.Extend(ctx, c, lease)
}

// TestRelayBoundsOutboxCallsByTheLease: every write the relay makes for a
// claim carries a deadline no later than the lease, so a call stuck on a
// dead connection cannot hold a pass, or its shutdown, forever.
func TestRelayBoundsOutboxCallsByTheLease(t *testing.T) {
	t.Parallel()
	const lease = 3 * time.Second
	ob := &deadlineOutbox{memOutbox: &memOutbox{}, left: map[string][]time.Duration{}}
	ob.add("ok")
	ob.add("fail")
	ob.add("perm")
	ob.add("slow")
	extended := make(chan struct{})
	var once sync.Once
	hs := relay.NewHandlers()
	require.NoError(t, hs.Handle("ok", okHandler, relay.TopicOptions{}))
	require.NoError(t, hs.Handle("fail", func(context.Context, ports.ClaimedMessage) error { return errors.New("boom") }, relay.TopicOptions{}))
	require.NoError(t, hs.Handle("perm", func(context.Context, ports.ClaimedMessage) error { return relay.Permanent(errors.New("bad")) }, relay.TopicOptions{}))
	require.NoError(t, hs.Handle("slow", func(ctx context.Context, _ ports.ClaimedMessage) error {
		select {
		case <-extended:
			return nil
		case <-time.After(awaitTimeout):
			return errors.New("the lease was never extended")
		}
	}, relay.TopicOptions{}))
	r, err := relay.New(ob, hs, relay.Options{Lease: lease, Observer: func(_ context.Context, o relay.Observation) {
		if o.Outcome == relay.OutcomeExtended {
			once.Do(func() { close(extended) })
		}
	}})
	require.NoError(t, err)
	res, err := r.Drain(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, res.Delivered)
	ob.mu.Lock()
	defer ob.mu.Unlock()
	for _, op := range []string{"complete", "retry", "dead-letter", "extend"} {
		require.NotEmpty(t, ob.left[op], "the relay called %s", op)
		for _, left := range ob.left[op] {
			require.Greater(t, left, time.Duration(0), "%s has a deadline", op)
			require.LessOrEqual(t, left, lease, "%s is bounded by the lease", op)
		}
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	exact := relay.Backoff{Initial: time.Second, Factor: 2, Max: 10 * time.Second, NoJitter: true}
	for attempt, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 500: 10 * time.Second} {
		require.Equal(t, want, exact.Delay(attempt), "attempt %d", attempt)
	}
	jittered := relay.Backoff{Initial: time.Second, Jitter: 0.5, Max: time.Hour}
	seen := map[time.Duration]bool{}
	for range 200 {
		d := jittered.Delay(3)
		require.GreaterOrEqual(t, d, 2*time.Second)
		require.LessOrEqual(t, d, 6*time.Second)
		seen[d] = true
	}
	require.Greater(t, len(seen), 1, "jitter varies the delay")
	require.LessOrEqual(t, relay.Backoff{Initial: time.Second, Max: 2 * time.Second, Jitter: 1}.Delay(10), 2*time.Second, "jitter never exceeds Max")

	require.NoError(t, relay.Backoff{}.Validate())
	for _, bad := range []relay.Backoff{{Initial: -1}, {Factor: 0.5}, {Initial: time.Hour, Max: time.Minute}, {Jitter: 2}} {
		require.ErrorIs(t, bad.Validate(), ports.ErrInvalidArgument, "%+v", bad)
	}
}
