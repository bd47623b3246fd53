package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

const awaitTimeout = 30 * time.Second

func okHandler(context.Context, ports.ClaimedMessage) error { return nil }

func handlersFor(t *testing.T, topics ...string) *core.Handlers {
	t.Helper()
	hs := core.NewHandlers()
	for _, topic := range topics {
		require.NoError(t, hs.Handle(topic, okHandler))
	}
	return hs
}

func TestNewRelayRejectsInvalidOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts core.RelayOptions
		want string
	}{
		{"NegativeBatchSize", core.RelayOptions{BatchSize: -1}, "BatchSize"},
		{"NegativeConcurrency", core.RelayOptions{Concurrency: -1}, "Concurrency"},
		{"NegativeLease", core.RelayOptions{Lease: -time.Second}, "Lease"},
		{"NegativePollInterval", core.RelayOptions{PollInterval: -time.Second}, "PollInterval"},
		{"MaxPollIntervalBelowPollInterval", core.RelayOptions{PollInterval: time.Second, MaxPollInterval: time.Millisecond}, "MaxPollInterval"},
		{"NegativeShutdownTimeout", core.RelayOptions{ShutdownTimeout: -1}, "ShutdownTimeout"},
		{"NegativeCompleteBatchSize", core.RelayOptions{CompleteBatchSize: -1}, "CompleteBatchSize"},
		{"NegativeCompleteInterval", core.RelayOptions{CompleteInterval: -1}, "CompleteInterval"},
		{"NegativeMaxMessages", core.RelayOptions{MaxMessages: -1}, "MaxMessages"},
		{"UnknownPolicy", core.RelayOptions{UnknownTopic: 7}, "UnknownTopic"},
		{"InvalidBackoff", core.RelayOptions{Backoff: core.Backoff{Factor: 0.5}}, "Factor"},
		{"EmptyTopic", core.RelayOptions{Topics: []string{"a", ""}}, "Topics[1]"},
		{"OverlongTopic", core.RelayOptions{Topics: []string{strings.Repeat("t", 256)}}, "Topics[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := core.NewRelay(&memOutbox{}, handlersFor(t, "a"), tt.opts)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, "core: new relay")
			require.Nil(t, r)
		})
	}
}

func TestNewRelayFillsDefaults(t *testing.T) {
	t.Parallel()
	r, err := core.NewRelay(&memOutbox{}, handlersFor(t, "a"), core.RelayOptions{})
	require.NoError(t, err)
	o := r.Options()
	require.Equal(t, core.DefaultRelayBatchSize, o.BatchSize)
	require.Equal(t, core.DefaultRelayConcurrency, o.Concurrency)
	require.Equal(t, core.DefaultRelayLease, o.Lease)
	require.Equal(t, core.DefaultRelayPollInterval, o.PollInterval)
	require.Equal(t, core.DefaultRelayMaxPollInterval, o.MaxPollInterval)
	require.Equal(t, core.DefaultRelayShutdownTimeout, o.ShutdownTimeout)
	require.Equal(t, core.DefaultRelayBatchSize, o.CompleteBatchSize, "CompleteBatchSize defaults to BatchSize")
	require.Equal(t, core.DefaultRelayCompleteInterval, o.CompleteInterval)
	require.Equal(t, core.DeadLetterUnknown, o.UnknownTopic)
	require.NotNil(t, o.Logger, "a nil logger discards")

	r, err = core.NewRelay(&memOutbox{}, handlersFor(t, "a"), core.RelayOptions{PollInterval: 10 * time.Second, BatchSize: 7})
	require.NoError(t, err)
	require.Equal(t, 10*time.Second, r.Options().MaxPollInterval, "MaxPollInterval is never below PollInterval")
	require.Equal(t, 7, r.Options().CompleteBatchSize)
	require.Equal(t, 14, r.Options().Concurrency, "Concurrency defaults to twice BatchSize")
	require.Equal(t, 2*core.DefaultRelayBatchSize, core.DefaultRelayConcurrency)
}

func TestNewRelayRejectsMissingParts(t *testing.T) {
	t.Parallel()
	_, err := core.NewRelay(nil, handlersFor(t, "a"), core.RelayOptions{})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	_, err = core.NewRelay(&memOutbox{}, nil, core.RelayOptions{})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	_, err = core.NewRelay(&memOutbox{}, core.NewHandlers(), core.RelayOptions{})
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
		register func(hs *core.Handlers) error
	}{
		{"EmptyTopic", func(hs *core.Handlers) error { return hs.Handle("", okHandler) }},
		{"OverlongTopic", func(hs *core.Handlers) error { return hs.Handle(strings.Repeat("t", 256), okHandler) }},
		{"NilHandler", func(hs *core.Handlers) error { return hs.Handle("t", nil) }},
		{"DuplicateTopic", func(hs *core.Handlers) error { _ = hs.Handle("t", okHandler); return hs.Handle("t", okHandler) }},
		{"TwoTopicOptions", func(hs *core.Handlers) error {
			return hs.Handle("t", okHandler, core.TopicOptions{}, core.TopicOptions{})
		}},
		{"NegativeTopicMaxAttempts", func(hs *core.Handlers) error {
			return hs.Handle("t", okHandler, core.TopicOptions{MaxAttempts: -1})
		}},
		{"NegativeTopicTimeout", func(hs *core.Handlers) error {
			return hs.Handle("t", okHandler, core.TopicOptions{Timeout: -1})
		}},
		{"InvalidTopicBackoff", func(hs *core.Handlers) error {
			return hs.Handle("t", okHandler, core.TopicOptions{Backoff: core.Backoff{Jitter: 2}})
		}},
		{"NilTypedHandler", func(hs *core.Handlers) error { return core.HandleEvent(hs, ev, nil) }},
		{"TypedTopicTwice", func(hs *core.Handlers) error {
			_ = hs.Handle("ev", okHandler)
			return core.HandleEvent(hs, ev, func(context.Context, struct{}, ports.Event) error { return nil })
		}},
		{"NilBus", func(hs *core.Handlers) error { return hs.PublishEvents(nil) }},
		{"BusTwice", func(hs *core.Handlers) error { _ = hs.PublishEvents(bus); return hs.PublishEvents(bus) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.ErrorIs(t, tt.register(core.NewHandlers()), ports.ErrInvalidArgument)
		})
	}
}

func TestNewRelaySealsHandlers(t *testing.T) {
	t.Parallel()
	hs := handlersFor(t, "a")
	_, err := core.NewRelay(&memOutbox{}, hs, core.RelayOptions{})
	require.NoError(t, err)
	require.ErrorContains(t, hs.Handle("b", okHandler), "before NewRelay")
	require.ErrorContains(t, hs.PublishEvents(busFunc(func(context.Context, ...ports.Event) error { return nil })), "before NewRelay")
	_, err = core.NewRelay(&memOutbox{}, hs, core.RelayOptions{})
	require.NoError(t, err, "one handler set may serve several relays")
	require.Equal(t, []string{"a"}, hs.Topics())
}

func TestRelayClaimTopics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		handled  []string
		catchAll bool
		opts     core.RelayOptions
		want     []string
		wantErr  bool
	}{
		{name: "DeadLetterClaimsEverything", handled: []string{"b", "a"}, want: nil},
		{name: "DeadLetterKeepsTopics", handled: []string{"a"}, opts: core.RelayOptions{Topics: []string{"a", "x"}}, want: []string{"a", "x"}},
		{name: "LeavePendingClaimsHandledTopics", handled: []string{"b", "a"},
			opts: core.RelayOptions{UnknownTopic: core.LeaveUnknownPending}, want: []string{"a", "b"}},
		{name: "LeavePendingNarrowsTopics", handled: []string{"a", "b"},
			opts: core.RelayOptions{UnknownTopic: core.LeaveUnknownPending, Topics: []string{"b", "x"}}, want: []string{"b"}},
		{name: "LeavePendingWithoutHandledTopic", handled: []string{"a"},
			opts: core.RelayOptions{UnknownTopic: core.LeaveUnknownPending, Topics: []string{"x"}}, wantErr: true},
		{name: "LeavePendingWithCatchAllClaimsEverything", handled: []string{"a"}, catchAll: true,
			opts: core.RelayOptions{UnknownTopic: core.LeaveUnknownPending}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hs := handlersFor(t, tt.handled...)
			if tt.catchAll {
				require.NoError(t, hs.PublishEvents(busFunc(func(context.Context, ...ports.Event) error { return nil })))
			}
			r, err := core.NewRelay(&memOutbox{}, hs, tt.opts)
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
	require.NoError(t, core.Permanent(nil))
	require.False(t, core.IsPermanent(nil))
	require.False(t, core.IsPermanent(base))
	p := core.Permanent(base)
	require.True(t, core.IsPermanent(p))
	require.True(t, core.IsPermanent(fmt.Errorf("handler: %w", p)), "detected through wrapping")
	require.ErrorIs(t, p, base, "the cause stays reachable")
	require.Equal(t, "poison", p.Error(), "the text is the cause's")
	var pe *core.PermanentError
	require.ErrorAs(t, fmt.Errorf("x: %w", p), &pe)
	require.Equal(t, base, pe.Err)
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	base := errors.New("rate limited")
	require.NoError(t, core.RetryAfter(nil, time.Second))
	_, ok := core.RetryAfterDelay(base)
	require.False(t, ok)
	_, ok = core.RetryAfterDelay(nil)
	require.False(t, ok)

	err := fmt.Errorf("call: %w", core.RetryAfter(base, 42*time.Second))
	d, ok := core.RetryAfterDelay(err)
	require.True(t, ok, "detected through wrapping")
	require.Equal(t, 42*time.Second, d)
	require.ErrorIs(t, err, base)
	require.Equal(t, "call: rate limited", err.Error())

	d, ok = core.RetryAfterDelay(core.RetryAfter(base, -time.Second))
	require.True(t, ok)
	require.Zero(t, d, "a negative delay counts as zero")

	outer := core.RetryAfter(fmt.Errorf("w: %w", core.RetryAfter(base, time.Second)), time.Minute)
	d, _ = core.RetryAfterDelay(outer)
	require.Equal(t, time.Minute, d, "the outermost request wins")
}

func TestPanicErrorText(t *testing.T) {
	t.Parallel()
	err := &core.PanicError{Value: "boom", Stack: []byte("goroutine 1 [running]:")}
	require.Equal(t, "panic: boom", err.Error(), "the text holds the value, not the stack")
}

func TestEffectivelyOncePanicsOnBadArguments(t *testing.T) {
	t.Parallel()
	var store ports.Idempotency = nopIdempotency{}
	require.PanicsWithValue(t, `core: EffectivelyOnce: empty namespace; name the consumer, e.g. "billing.order-placed"`, func() {
		core.EffectivelyOnce(store, "", okHandler)
	})
	require.Panics(t, func() { core.EffectivelyOnce(nil, "ns", okHandler) })
	require.Panics(t, func() { core.EffectivelyOnce(store, "ns", nil) })
	require.Panics(t, func() {
		core.EffectivelyOnceTx[int](nil, func(int) ports.Idempotency { return store }, "ns",
			func(context.Context, int, ports.ClaimedMessage) error { return nil })
	})
	require.NotNil(t, core.EffectivelyOnce(store, "ns", okHandler))
}

type nopIdempotency struct{}

func (nopIdempotency) Reserve(context.Context, ports.ReserveRequest) (ports.Reservation, error) {
	return ports.Reservation{}, errors.New("nop")
}
func (nopIdempotency) Complete(context.Context, ports.Reservation, json.RawMessage) error { return nil }
func (nopIdempotency) Fail(context.Context, ports.Reservation) error                      { return nil }

// runRelay runs r until the returned stop is called.
func runRelay(t *testing.T, r *core.Relay) (stop func() error) {
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
func delivered() (core.Observer, <-chan string) {
	ch := make(chan string, 100)
	return func(_ context.Context, o core.Observation) {
		if o.Outcome == core.OutcomeDelivered {
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
	r, err := core.NewRelay(notifyingOutbox{ob}, handlersFor(t, "t"), core.RelayOptions{
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
	r, err := core.NewRelay(notifyingOutbox{ob}, handlersFor(t, "t"), core.RelayOptions{
		PollInterval: time.Millisecond, MaxPollInterval: 2 * time.Millisecond, Observer: obs,
	})
	require.NoError(t, err)
	stop := runRelay(t, r)
	require.Zero(t, awaitClaim(t, ob.claims))
	id := ob.add("t")
	awaitID(t, got, id)
	require.NoError(t, stop())
}

func TestRelayRunsOnePassAtATime(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{}
	id := ob.add("t")
	started, release := make(chan struct{}), make(chan struct{})
	hs := core.NewHandlers()
	require.NoError(t, hs.Handle("t", func(context.Context, ports.ClaimedMessage) error {
		close(started)
		<-release
		return nil
	}))
	r, err := core.NewRelay(ob, hs, core.RelayOptions{})
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
	require.Equal(t, core.DrainResult{}, res)
}

func TestUnknownTopicPolicyString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "dead-letter", core.DeadLetterUnknown.String())
	require.Equal(t, "leave-pending", core.LeaveUnknownPending.String())
	require.Equal(t, "UnknownTopicPolicy(9)", core.UnknownTopicPolicy(9).String())
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
	r, err := core.NewRelay(ob, handlersFor(t, "t"), core.RelayOptions{BatchSize: 10,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	require.NoError(t, err)
	res, err := r.Drain(context.Background())
	require.NoError(t, err, "transient claim conflicts do not end a Drain")
	require.Equal(t, core.DrainResult{Claimed: 250, Delivered: 250}, res)
	require.Equal(t, 250, ob.count("delivered"))
	require.Equal(t, 6, strings.Count(logs.String(), "level=WARN msg=\"relay: claim hit a transient conflict; retrying\""), logs.String())
}

func TestDrainGivesUpOnPersistentClaimConflicts(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{claimErr: conflict}
	addN(ob, "t", 3)
	r, err := core.NewRelay(ob, handlersFor(t, "t"), core.RelayOptions{})
	require.NoError(t, err)
	res, err := r.Drain(context.Background())
	require.ErrorIs(t, err, ports.ErrRetryable)
	require.ErrorContains(t, err, "core: relay drain: 9 consecutive claims failed")
	require.Equal(t, core.DrainResult{}, res)
	calls, _ := ob.claimStats()
	require.Equal(t, 9, calls, "the first claim and 8 retries")

	// A conflict only part of the time is not persistent: the count restarts
	// after every successful claim.
	ob = &memOutbox{}
	for range 3 {
		ob.claimErrs = append(ob.claimErrs, conflict, conflict, conflict, conflict, conflict, conflict, nil)
	}
	addN(ob, "t", 25)
	r, err = core.NewRelay(ob, handlersFor(t, "t"), core.RelayOptions{BatchSize: 10})
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
	r, err := core.NewRelay(ob, handlersFor(t, "t"), core.RelayOptions{BatchSize: 10})
	require.NoError(t, err)
	res, err := r.Drain(context.Background())
	require.ErrorIs(t, err, broken)
	require.NotErrorIs(t, err, ports.ErrRetryable)
	require.Equal(t, core.DrainResult{Claimed: 10, Delivered: 10}, res, "what was claimed is still delivered")
	calls, _ := ob.claimStats()
	require.Equal(t, 2, calls, "not retried")
}

func TestRunRetriesRetryableClaimErrors(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{claimErrs: []error{conflict, conflict, conflict}}
	id := ob.add("t")
	obs, got := delivered()
	r, err := core.NewRelay(ob, handlersFor(t, "t"), core.RelayOptions{
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
	r, err := core.NewRelay(ob, handlersFor(t, "t"), core.RelayOptions{})
	require.NoError(t, err)
	res, err := r.Drain(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1000, res.Delivered)
	_, limits := ob.claimStats()
	for i, l := range limits {
		require.Equal(t, core.DefaultRelayBatchSize, l, "claim %d of %v: with the defaults every claim asks for a full batch", i, limits)
	}
	require.Len(t, limits, 11, "ten full claims and the empty one that ends the pass")
}

func TestDrainRespectsConcurrency(t *testing.T) {
	t.Parallel()
	ob := &memOutbox{}
	addN(ob, "t", 60)
	var mu sync.Mutex
	running, peak := 0, 0
	hs := core.NewHandlers()
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
	}))
	r, err := core.NewRelay(ob, hs, core.RelayOptions{BatchSize: 10, Concurrency: 3})
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
	hs := core.NewHandlers()
	require.NoError(t, hs.Handle("ok", okHandler))
	require.NoError(t, hs.Handle("fail", func(context.Context, ports.ClaimedMessage) error { return errors.New("boom") }))
	require.NoError(t, hs.Handle("perm", func(context.Context, ports.ClaimedMessage) error { return core.Permanent(errors.New("bad")) }))
	require.NoError(t, hs.Handle("slow", func(ctx context.Context, _ ports.ClaimedMessage) error {
		select {
		case <-extended:
			return nil
		case <-time.After(awaitTimeout):
			return errors.New("the lease was never extended")
		}
	}))
	r, err := core.NewRelay(ob, hs, core.RelayOptions{Lease: lease, Observer: func(_ context.Context, o core.Observation) {
		if o.Outcome == core.OutcomeExtended {
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
