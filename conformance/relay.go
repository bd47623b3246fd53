package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// relayTests are the tests of the Relay group: core/relay driving the
// driver's outbox (and idempotency store and unit of work). The relay is
// written on the ports alone, so these tests hold every dialect to the same
// delivery semantics. Time is the fixture's fake clock; the relay's real-time
// intervals (poll, completion) are short, and every wait is on a channel or
// an observed outcome, never a sleep.
func relayTests() []testCase {
	return []testCase{
		{"DeliversAndCompletesMessages", testRelayDelivers},
		{"RetriesWithBackoff", testRelayRetryBackoff},
		{"DeadLettersAfterMaxAttempts", testRelayMaxAttempts},
		{"PermanentErrorDeadLettersAtOnce", testRelayPermanent},
		{"UnknownTopic", testRelayUnknownTopic},
		{"HandlerPanicIsRetried", testRelayPanic},
		{"TypedEventHandlerDecodesPayload", testRelayTypedEvents},
		{"PublishesUnhandledEventsToBus", testRelayEventBus},
		{"DrainCountsOutcomes", testRelayDrainCounts},
		{"DrainStopsAtMaxMessages", testRelayDrainMax},
		{"RunDeliversMessagesEnqueuedWhileRunning", testRelayRunPolls},
		{"RunWakesAtOnceOnCommits", testRelayRunWakes},
		{"RunPollsAnOutboxWithoutNotifications", testRelayRunPollsWithoutNotifications},
		{"ExtendsLeaseOfSlowHandler", testRelayExtendsLease},
		{"LostClaimOutcomeIsAbandoned", testRelayLostClaim},
		{"LostClaimCancelsHandler", testRelayLostClaimCancels},
		{"ShutdownReleasesClaims", testRelayShutdown},
		{"CrashedRelayMessagesAreRedelivered", testRelayCrash},
		{"EffectivelyOnceSkipsRedelivery", testRelayEffectivelyOnce},
		{"EffectivelyOnceRetriesWhileInProgress", testRelayEffectivelyOnceInProgress},
		{"EffectivelyOnceTxCommitsWithHandlerWrites", testRelayEffectivelyOnceTx},
		{"ConcurrentRelaysDeliverEveryMessageOnce", testRelayConcurrent},
	}
}

// awaitTimeout guards every wait of the relay tests: a wait that reaches it
// fails the test. It is not a synchronisation mechanism.
const awaitTimeout = 30 * time.Second

// testBackoff is the relay backoff of the tests: exact delays.
var testBackoff = relay.Backoff{Initial: 10 * time.Second, Factor: 2, Max: time.Hour, NoJitter: true}

// relayWatch records the relay's observations and lets tests wait for them.
type relayWatch struct {
	mu  sync.Mutex
	obs []relay.Observation
	sig *signal
}

func newRelayWatch() *relayWatch { return &relayWatch{sig: newSignal()} }

func (w *relayWatch) observe(_ context.Context, o relay.Observation) {
	w.mu.Lock()
	w.obs = append(w.obs, o)
	w.mu.Unlock()
	w.sig.broadcast()
}

// matching returns the observations for which pred holds, in order.
func (w *relayWatch) matching(pred func(relay.Observation) bool) []relay.Observation {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []relay.Observation
	for _, o := range w.obs {
		if pred(o) {
			out = append(out, o)
		}
	}
	return out
}

// outcomes returns the observations with outcome o.
func (w *relayWatch) outcomes(o relay.Outcome) []relay.Observation {
	return w.matching(func(x relay.Observation) bool { return x.Outcome == o })
}

// awaitN waits until n observations match pred and returns them.
func (w *relayWatch) awaitN(t testing.TB, what string, n int, pred func(relay.Observation) bool) []relay.Observation {
	t.Helper()
	deadline := time.NewTimer(awaitTimeout)
	defer deadline.Stop()
	for {
		changed := w.sig.wait()
		if got := w.matching(pred); len(got) >= n {
			return got[:n]
		}
		select {
		case <-changed:
		case <-deadline.C:
			require.FailNow(t, "timed out waiting for "+what, "observed so far: %v", w.matching(func(relay.Observation) bool { return true }))
		}
	}
}

// await waits for one observation of outcome o for message id.
func (w *relayWatch) await(t testing.TB, o relay.Outcome, id string) relay.Observation {
	t.Helper()
	return w.awaitN(t, fmt.Sprintf("outcome %s of message %s", o, id), 1, func(x relay.Observation) bool {
		return x.Outcome == o && x.MessageID == id
	})[0]
}

// relayOptions are the options of the tests' relays: the fake clock, the
// test lease, exact backoff, short real-time intervals and w as observer.
func (f *fixture) relayOptions(w *relayWatch) relay.Options {
	return relay.Options{
		Now:             f.clock.Now,
		Lease:           testLease,
		PollInterval:    2 * time.Millisecond,
		MaxPollInterval: 10 * time.Millisecond,
		Backoff:         testBackoff,
		ShutdownTimeout: awaitTimeout,
		Observer:        w.observe,
	}
}

func (f *fixture) newRelay(ob ports.Outbox, hs *relay.Handlers, opts relay.Options) *relay.Relay {
	f.t.Helper()
	r, err := relay.New(ob, hs, opts)
	require.NoError(f.t, err, "relay.New")
	return r
}

// drain runs one Drain and requires it to succeed.
func (f *fixture) drain(ob ports.Outbox, hs *relay.Handlers, opts relay.Options) relay.DrainResult {
	f.t.Helper()
	res, err := f.newRelay(ob, hs, opts).Drain(f.ctx)
	require.NoError(f.t, err, "Drain")
	return res
}

type drainOutcome struct {
	res relay.DrainResult
	err error
}

// startDrain runs r.Drain in a goroutine.
func (f *fixture) startDrain(r *relay.Relay) <-chan drainOutcome {
	out := make(chan drainOutcome, 1)
	go func() {
		res, err := r.Drain(f.ctx)
		out <- drainOutcome{res, err}
	}()
	return out
}

// awaitDrain waits for a Drain started with startDrain.
func awaitDrain(t testing.TB, ch <-chan drainOutcome) (relay.DrainResult, error) {
	t.Helper()
	select {
	case out := <-ch:
		return out.res, out.err
	case <-time.After(awaitTimeout):
		require.FailNow(t, "timed out waiting for Drain to return")
		return relay.DrainResult{}, nil
	}
}

// startRun runs r.Run in a goroutine; stop cancels it and returns Run's
// error. Stop is also registered as a cleanup.
func (f *fixture) startRun(r *relay.Relay) (stop func() error) {
	ctx, cancel := context.WithCancel(f.ctx)
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
				err = errors.New("conformance: Run did not return after its ctx was cancelled")
			}
		})
		return err
	}
	f.t.Cleanup(func() { _ = stop() })
	return stop
}

// handlers builds a handler set; register fails the test on error.
func (f *fixture) handlers(register func(hs *relay.Handlers) error) *relay.Handlers {
	f.t.Helper()
	hs := relay.NewHandlers()
	require.NoError(f.t, register(hs), "register handlers")
	return hs
}

// seen records the messages a handler received.
type seen struct {
	mu   sync.Mutex
	msgs []ports.ClaimedMessage
}

func (s *seen) add(m ports.ClaimedMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
}

func (s *seen) all() []ports.ClaimedMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ports.ClaimedMessage(nil), s.msgs...)
}

func (s *seen) ids() []string { return claimedIDs(s.all()) }

// maxAttemptsJob returns a job on topic with MaxAttempts n.
func maxAttemptsJob(topic string, n int) ports.OutboxMessage {
	m := job(topic)
	m.MaxAttempts = n
	return m
}

func testRelayDelivers(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	ids := f.enqueue(ob, job("conf.relay.ok"), job("conf.relay.ok"), job("conf.relay.ok"), job("conf.relay.ok"), job("conf.relay.ok"))
	var got seen
	hs := f.handlers(func(hs *relay.Handlers) error {
		return hs.Handle("conf.relay.ok", func(ctx context.Context, m ports.ClaimedMessage) error {
			got.add(m)
			return nil
		}, relay.TopicOptions{})
	})
	w := newRelayWatch()
	opts := f.relayOptions(w)
	opts.Concurrency = 2
	opts.BatchSize = 2
	res := f.drain(ob, hs, opts)

	require.Equal(t, relay.DrainResult{Claimed: 5, Delivered: 5}, res)
	require.ElementsMatch(t, ids, got.ids(), "every message reaches its handler once")
	for _, m := range got.all() {
		require.Equal(t, 1, m.Attempts)
		require.JSONEq(t, `{"n":1}`, string(m.Payload))
	}
	require.Empty(t, f.listAll(ob), "delivered messages leave the outbox")
	delivered := w.outcomes(relay.OutcomeDelivered)
	require.Len(t, delivered, 5)
	for _, o := range delivered {
		require.Equal(t, "conf.relay.ok", o.Topic)
		require.Equal(t, 1, o.Attempt)
		require.NoError(t, o.Err)
	}
}

func testRelayRetryBackoff(t *testing.T, h Harness) {
	flaky := errors.New("conf: flaky")
	tests := []struct {
		name  string
		opts  relay.TopicOptions
		err   error
		waits []time.Duration // AvailableAt - now after attempts 1, 2
	}{
		{"RelayBackoff", relay.TopicOptions{}, flaky, []time.Duration{10 * time.Second, 20 * time.Second}},
		{"TopicBackoff", relay.TopicOptions{Backoff: relay.Backoff{Initial: 3 * time.Second, Factor: 3, NoJitter: true}}, flaky,
			[]time.Duration{3 * time.Second, 9 * time.Second}},
		{"RetryAfter", relay.TopicOptions{}, relay.RetryAfter(fmt.Errorf("wrapped: %w", flaky), 42*time.Second),
			[]time.Duration{42 * time.Second, 42 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, h)
			ob := f.outbox(f.db)
			ids := f.enqueue(ob, maxAttemptsJob("conf.relay.flaky", 5))
			hs := f.handlers(func(hs *relay.Handlers) error {
				return hs.Handle("conf.relay.flaky", func(context.Context, ports.ClaimedMessage) error { return tt.err }, tt.opts)
			})
			w := newRelayWatch()
			for attempt, wait := range tt.waits {
				res := f.drain(ob, hs, f.relayOptions(w))
				require.Equal(t, relay.DrainResult{Claimed: 1, Retried: 1}, res, "attempt %d", attempt+1)
				now := f.clock.Now()
				r := f.record(ob, ids[0])
				require.Equal(t, ports.StatusPending, r.Status)
				require.Equal(t, attempt+1, r.Attempts)
				require.Equal(t, tt.err.Error(), r.LastError, "the handler's error is the last error")
				requireTime(t, now.Add(wait), r.AvailableAt, "attempt %d: AvailableAt = now + the backoff delay", attempt+1)
				require.True(t, r.LockedUntil.IsZero(), "a message waiting for its retry is not leased")
				o := w.outcomes(relay.OutcomeRetried)[attempt]
				requireTime(t, now.Add(wait), o.RetryAt, "the observation reports the retry time")
				require.ErrorIs(t, o.Err, flaky)

				require.Equal(t, relay.DrainResult{}, f.drain(ob, hs, f.relayOptions(w)), "nothing is ready before the retry time")
				f.clock.Advance(wait)
			}
		})
	}
}

func testRelayMaxAttempts(t *testing.T, h Harness) {
	tests := []struct {
		name        string
		maxAttempts int // the message's
		topicMax    int
		wantDeadAt  int
	}{
		{"MessageLimit", 3, 0, 3},
		{"TopicLimitBelowMessageLimit", 10, 2, 2},
		{"TopicLimitAboveMessageLimit", 2, 5, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, h)
			ob := f.outbox(f.db)
			ids := f.enqueue(ob, maxAttemptsJob("conf.relay.failing", tt.maxAttempts))
			calls := 0
			hs := f.handlers(func(hs *relay.Handlers) error {
				return hs.Handle("conf.relay.failing", func(_ context.Context, m ports.ClaimedMessage) error {
					calls++
					return fmt.Errorf("conf: attempt %d failed", m.Attempts)
				}, relay.TopicOptions{MaxAttempts: tt.topicMax, Backoff: relay.Backoff{Initial: time.Second, NoJitter: true}})
			})
			w := newRelayWatch()
			for attempt := 1; attempt < tt.wantDeadAt; attempt++ {
				require.Equal(t, relay.DrainResult{Claimed: 1, Retried: 1}, f.drain(ob, hs, f.relayOptions(w)), "attempt %d", attempt)
				f.clock.Advance(time.Hour)
			}
			require.Equal(t, relay.DrainResult{Claimed: 1, DeadLettered: 1}, f.drain(ob, hs, f.relayOptions(w)), "the final attempt")
			r := f.record(ob, ids[0])
			require.Equal(t, ports.StatusDead, r.Status)
			require.Equal(t, tt.wantDeadAt, r.Attempts)
			require.Equal(t, fmt.Sprintf("conf: attempt %d failed", tt.wantDeadAt), r.LastError, "the last error is kept")
			require.Equal(t, tt.wantDeadAt, calls)
			dead := w.outcomes(relay.OutcomeDead)
			require.Len(t, dead, 1)
			require.Equal(t, tt.wantDeadAt, dead[0].Attempt)
			f.clock.Advance(24 * time.Hour)
			require.Equal(t, relay.DrainResult{}, f.drain(ob, hs, f.relayOptions(w)), "a dead letter is not delivered again")
		})
	}
}

func testRelayPermanent(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	ids := f.enqueue(ob, maxAttemptsJob("conf.relay.poison", 5))
	hs := f.handlers(func(hs *relay.Handlers) error {
		return hs.Handle("conf.relay.poison", func(context.Context, ports.ClaimedMessage) error {
			return fmt.Errorf("handler: %w", relay.Permanent(errors.New("conf: poison")))
		}, relay.TopicOptions{})
	})
	w := newRelayWatch()
	require.Equal(t, relay.DrainResult{Claimed: 1, DeadLettered: 1}, f.drain(ob, hs, f.relayOptions(w)))
	r := f.record(ob, ids[0])
	require.Equal(t, ports.StatusDead, r.Status, "a permanent error dead-letters at once")
	require.Equal(t, 1, r.Attempts)
	require.Equal(t, "handler: conf: poison", r.LastError)
	o := w.await(t, relay.OutcomeDead, ids[0])
	require.True(t, relay.IsPermanent(o.Err))
}

func testRelayUnknownTopic(t *testing.T, h Harness) {
	t.Run("DeadLetteredByDefault", func(t *testing.T) {
		t.Parallel()
		f := setup(t, h)
		ob := f.outbox(f.db)
		ids := f.enqueue(ob, maxAttemptsJob("conf.relay.nobody", 5), job("conf.relay.known"))
		hs := f.handlers(func(hs *relay.Handlers) error {
			return hs.Handle("conf.relay.known", func(context.Context, ports.ClaimedMessage) error { return nil }, relay.TopicOptions{})
		})
		w := newRelayWatch()
		require.Equal(t, relay.DrainResult{Claimed: 2, Delivered: 1, DeadLettered: 1}, f.drain(ob, hs, f.relayOptions(w)))
		r := f.record(ob, ids[0])
		require.Equal(t, ports.StatusDead, r.Status)
		require.Equal(t, 1, r.Attempts)
		require.Contains(t, r.LastError, `"conf.relay.nobody"`, "the last error names the topic")
		require.ErrorIs(t, w.await(t, relay.OutcomeDead, ids[0]).Err, relay.ErrNoHandler)
		require.Equal(t, []string{ids[0]}, recordIDs(f.listAll(ob)))
	})
	t.Run("LeftPending", func(t *testing.T) {
		t.Parallel()
		f := setup(t, h)
		ob := f.outbox(f.db)
		ids := f.enqueue(ob, job("conf.relay.nobody"), job("conf.relay.known"), job("conf.relay.nobody"))
		hs := f.handlers(func(hs *relay.Handlers) error {
			return hs.Handle("conf.relay.known", func(context.Context, ports.ClaimedMessage) error { return nil }, relay.TopicOptions{})
		})
		w := newRelayWatch()
		opts := f.relayOptions(w)
		opts.UnknownTopic = relay.LeaveUnknownPending
		require.Equal(t, relay.DrainResult{Claimed: 1, Delivered: 1}, f.drain(ob, hs, opts), "only the known topic is claimed")
		for _, id := range []string{ids[0], ids[2]} {
			r := f.record(ob, id)
			require.Equal(t, ports.StatusPending, r.Status)
			require.Zero(t, r.Attempts, "an unknown topic spends no attempt")
			require.True(t, r.LockedUntil.IsZero(), "nor is it leased")
			require.Empty(t, r.LastError)
		}
		require.Equal(t, relay.DrainResult{}, f.drain(ob, hs, opts), "the relay does not spin on messages it leaves")
		require.EqualValues(t, 2, f.stats(ob).Ready, "another relay can take them at once")
	})
	t.Run("LeftPendingWithEventCatchAll", func(t *testing.T) {
		t.Parallel()
		f := setup(t, h)
		ob := f.outbox(f.db)
		ev := ports.OutboxMessage{Kind: ports.KindEvent, Topic: "conf.relay.any-event", Payload: raw(`{}`)}
		ids := f.enqueue(ob, maxAttemptsJob("conf.relay.unknown-job", 5), ev)
		bus := &recordingBus{}
		hs := f.handlers(func(hs *relay.Handlers) error { return hs.PublishEvents(bus, relay.TopicOptions{}) })
		w := newRelayWatch()
		opts := f.relayOptions(w)
		opts.UnknownTopic = relay.LeaveUnknownPending
		require.Equal(t, relay.DrainResult{Claimed: 2, Delivered: 1, Retried: 1}, f.drain(ob, hs, opts))
		r := f.record(ob, ids[0])
		require.Equal(t, ports.StatusPending, r.Status, "the unknown job is not dead-lettered")
		requireTime(t, f.clock.Now().Add(testBackoff.Initial), r.AvailableAt, "it is retried after the backoff delay")
		require.Contains(t, r.LastError, `"conf.relay.unknown-job"`)
		_, events := bus.snapshot()
		require.Len(t, events, 1)
		require.Equal(t, ids[1], events[0].ID)
	})
}

func testRelayPanic(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	secret := maxAttemptsJob("conf.relay.panics", 5)
	secret.Payload = raw(`{"card":"conf-secret-4242"}`)
	ids := f.enqueue(ob, secret)
	calls := 0
	hs := f.handlers(func(hs *relay.Handlers) error {
		return hs.Handle("conf.relay.panics", func(context.Context, ports.ClaimedMessage) error {
			calls++
			if calls == 1 {
				panic("conf: boom")
			}
			return nil
		}, relay.TopicOptions{})
	})
	w := newRelayWatch()
	logs := newLogRecorder()
	opts := f.relayOptions(w)
	opts.Logger = newTestLogger(logs)
	require.Equal(t, relay.DrainResult{Claimed: 1, Retried: 1}, f.drain(ob, hs, opts), "a panic is an error, not a crash")
	r := f.record(ob, ids[0])
	require.Equal(t, ports.StatusPending, r.Status)
	require.Contains(t, r.LastError, "panic")
	require.Contains(t, r.LastError, "conf: boom")
	require.NotContains(t, r.LastError, "goroutine", "the stored last error is short: no stack")
	var pe *relay.PanicError
	require.ErrorAs(t, w.await(t, relay.OutcomeRetried, ids[0]).Err, &pe)
	require.Equal(t, "conf: boom", pe.Value)
	rec, ok := logs.find("relay: handler panicked")
	require.True(t, ok, "the panic is logged")
	require.Contains(t, rec.attrs["stack"], "goroutine", "with its stack")
	require.Equal(t, ids[0], rec.attrs["message_id"])

	f.clock.Advance(testBackoff.Initial)
	require.Equal(t, relay.DrainResult{Claimed: 1, Delivered: 1}, f.drain(ob, hs, opts), "the relay keeps working after a panic")
	require.Empty(t, f.listAll(ob))
	for _, rec := range logs.all() {
		for k, v := range rec.attrs {
			require.NotContains(t, v, "conf-secret-4242", "log %q attribute %q: payloads are never logged", rec.msg, k)
		}
	}
}

func testRelayTypedEvents(t *testing.T, h Harness) {
	f := setup(t, h)
	uow, _ := f.unitOfWork(uowConfig{})
	want := confCreated{ID: "c-1", Name: "Zoë 🚢", Tags: []string{"a"}, Meta: map[string]string{"k": "v"}}
	var eventID string
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		ev, err := confCreatedEvent.New(want)
		if err != nil {
			return err
		}
		ev.ID = core.NewID()
		ev.Headers = map[string]string{"trace": "t-1"}
		eventID = ev.ID
		rec, err := core.NewOutboxEventRecorder(tx.Outbox, core.OutboxEventRecorderOptions{Now: f.clock.Now})
		if err != nil {
			return err
		}
		return rec.Record(ctx, ev)
	})
	require.NoError(t, err)
	ob := f.outbox(f.db)
	bad := f.enqueue(ob, ports.OutboxMessage{Kind: ports.KindEvent, Topic: confCreatedEvent.Name(), Payload: raw(`"not an object"`), MaxAttempts: 5})

	type call struct {
		payload confCreated
		event   ports.Event
	}
	var mu sync.Mutex
	var calls []call
	hs := f.handlers(func(hs *relay.Handlers) error {
		return relay.HandleEvent(hs, confCreatedEvent, func(ctx context.Context, p confCreated, ev ports.Event) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, call{p, ev})
			return nil
		}, relay.TopicOptions{})
	})
	w := newRelayWatch()
	require.Equal(t, relay.DrainResult{Claimed: 2, Delivered: 1, DeadLettered: 1}, f.drain(ob, hs, f.relayOptions(w)))
	require.Len(t, calls, 1, "only the decodable event reaches the typed handler")
	require.Equal(t, want, calls[0].payload, "the handler receives the decoded payload")
	require.Equal(t, eventID, calls[0].event.ID)
	require.Equal(t, confCreatedEvent.Name(), calls[0].event.Name)
	require.Equal(t, map[string]string{"trace": "t-1"}, calls[0].event.Headers)
	requireTime(t, f.clock.Now(), calls[0].event.OccurredAt)

	r := f.record(ob, bad[0])
	require.Equal(t, ports.StatusDead, r.Status, "a payload that does not decode is a permanent error")
	require.Equal(t, 1, r.Attempts)
	require.Contains(t, r.LastError, "decode payload")
	require.Equal(t, []string{bad[0]}, recordIDs(f.listAll(ob)))
}

func testRelayEventBus(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	event := func(topic string) ports.OutboxMessage {
		return ports.OutboxMessage{Kind: ports.KindEvent, Topic: topic, Payload: raw(`{"e":1}`), Headers: map[string]string{"h": "v"}, MaxAttempts: 5}
	}
	ids := f.enqueue(ob, event("conf.relay.any"), event("conf.relay.specific"), maxAttemptsJob("conf.relay.job", 5), event("conf.relay.failing"))
	bus := &recordingBus{check: func(_ context.Context, events []ports.Event) error {
		if events[0].Name == "conf.relay.failing" {
			return errors.New("conf: bus down")
		}
		return nil
	}}
	var specific seen
	hs := f.handlers(func(hs *relay.Handlers) error {
		if err := hs.PublishEvents(bus, relay.TopicOptions{}); err != nil {
			return err
		}
		return hs.Handle("conf.relay.specific", func(_ context.Context, m ports.ClaimedMessage) error {
			specific.add(m)
			return nil
		}, relay.TopicOptions{})
	})
	w := newRelayWatch()
	require.Equal(t, relay.DrainResult{Claimed: 4, Delivered: 2, Retried: 1, DeadLettered: 1}, f.drain(ob, hs, f.relayOptions(w)))

	calls, events := bus.snapshot()
	require.Equal(t, 2, calls, "one Publish per event without a handler of its own")
	require.Len(t, events, 1)
	require.Equal(t, ids[0], events[0].ID)
	require.Equal(t, "conf.relay.any", events[0].Name)
	require.JSONEq(t, `{"e":1}`, string(events[0].Payload))
	require.Equal(t, map[string]string{"h": "v"}, events[0].Headers)
	require.Equal(t, []string{ids[1]}, specific.ids(), "a topic with its own handler is not published")

	job := f.record(ob, ids[2])
	require.Equal(t, ports.StatusDead, job.Status, "a job without a handler is not published")
	require.Contains(t, job.LastError, "conf.relay.job")
	failing := f.record(ob, ids[3])
	require.Equal(t, ports.StatusPending, failing.Status, "a Publish error is retried")
	require.Equal(t, "conf: bus down", failing.LastError)
}

func testRelayDrainCounts(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	f.enqueue(ob, job("conf.relay.ok"), job("conf.relay.ok"), job("conf.relay.ok"),
		maxAttemptsJob("conf.relay.retry", 5), maxAttemptsJob("conf.relay.poison", 5), job("conf.relay.unknown"))
	hs := f.handlers(func(hs *relay.Handlers) error {
		return errors.Join(
			hs.Handle("conf.relay.ok", func(context.Context, ports.ClaimedMessage) error { return nil }, relay.TopicOptions{}),
			hs.Handle("conf.relay.retry", func(context.Context, ports.ClaimedMessage) error { return errors.New("later") }, relay.TopicOptions{}),
			hs.Handle("conf.relay.poison", func(context.Context, ports.ClaimedMessage) error { return relay.Permanent(errors.New("never")) }, relay.TopicOptions{}),
		)
	})
	w := newRelayWatch()
	opts := f.relayOptions(w)
	opts.BatchSize = 2
	require.Equal(t, relay.DrainResult{Claimed: 6, Delivered: 3, Retried: 1, DeadLettered: 2}, f.drain(ob, hs, opts))
	require.Len(t, w.outcomes(relay.OutcomeDelivered), 3)
	require.Len(t, w.outcomes(relay.OutcomeRetried), 1)
	require.Len(t, w.outcomes(relay.OutcomeDead), 2)
	st := f.stats(ob)
	require.EqualValues(t, 1, st.Scheduled)
	require.EqualValues(t, 2, st.Dead)
	require.Zero(t, st.Ready+st.Leased)
}

func testRelayDrainMax(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	msgs := make([]ports.OutboxMessage, 10)
	for i := range msgs {
		msgs[i] = job("conf.relay.ok")
	}
	ids := f.enqueue(ob, msgs...)
	var got seen
	hs := f.handlers(func(hs *relay.Handlers) error {
		return hs.Handle("conf.relay.ok", func(_ context.Context, m ports.ClaimedMessage) error {
			got.add(m)
			return nil
		}, relay.TopicOptions{})
	})
	w := newRelayWatch()
	opts := f.relayOptions(w)
	opts.MaxMessages, opts.BatchSize, opts.Concurrency = 4, 3, 2
	require.Equal(t, relay.DrainResult{Claimed: 4, Delivered: 4}, f.drain(ob, hs, opts))
	require.ElementsMatch(t, ids[:4], got.ids(), "the first four in claim order")
	require.Equal(t, ids[4:], recordIDs(f.listAll(ob)))
	require.Equal(t, relay.DrainResult{Claimed: 4, Delivered: 4}, f.drain(ob, hs, opts))
	require.Equal(t, relay.DrainResult{Claimed: 2, Delivered: 2}, f.drain(ob, hs, opts))
	require.Empty(t, f.listAll(ob))
}

func testRelayRunPolls(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	var got seen
	hs := f.handlers(func(hs *relay.Handlers) error {
		return hs.Handle("conf.relay.live", func(_ context.Context, m ports.ClaimedMessage) error {
			got.add(m)
			return nil
		}, relay.TopicOptions{})
	})
	w := newRelayWatch()
	stop := f.startRun(f.newRelay(ob, hs, f.relayOptions(w)))

	var ids []string
	for i := range 3 {
		id := f.enqueue(ob, job("conf.relay.live"))[0]
		ids = append(ids, id)
		w.await(t, relay.OutcomeDelivered, id)
		require.Equal(t, ids, got.ids(), "message %d is delivered by the running relay", i)
	}
	require.NoError(t, stop(), "Run returns nil on a clean shutdown")
	require.Empty(t, f.listAll(ob))
}

// claimSpy signals every Claim call; the outbox's notifications are
// promoted with the embedded wharf.Outbox.
type claimSpy struct {
	wharf.Outbox
	claims chan int
}

func (s *claimSpy) Claim(ctx context.Context, opts ports.ClaimOptions) ([]ports.ClaimedMessage, error) {
	msgs, err := s.Outbox.Claim(ctx, opts)
	select {
	case s.claims <- len(msgs):
	default:
	}
	return msgs, err
}

// awaitEmptyClaims waits for n claims that find nothing.
func (s *claimSpy) awaitEmptyClaims(t testing.TB, n int) {
	t.Helper()
	for i := range n {
		select {
		case got := <-s.claims:
			require.Zero(t, got, "empty claim %d finds nothing", i+1)
		case <-time.After(awaitTimeout):
			require.FailNow(t, "the relay stopped claiming", "after %d empty claims", i)
		}
	}
}

// promptly bounds the wait for a relay woken by a commit: far below its
// hour-long poll interval, far above any scheduling delay.
const promptly = 5 * time.Second

// idleRelay runs a relay on ob whose poll interval is an hour and waits
// until its first claim came back empty: from then on only a wake-up makes
// it claim again. It returns the IDs its handler receives.
func (f *fixture) idleRelay(ob wharf.Outbox, topic string) <-chan string {
	f.t.Helper()
	handled := make(chan string, 10)
	hs := f.handlers(func(hs *relay.Handlers) error {
		return hs.Handle(topic, func(_ context.Context, m ports.ClaimedMessage) error {
			handled <- m.ID
			return nil
		}, relay.TopicOptions{})
	})
	opts := f.relayOptions(newRelayWatch())
	opts.PollInterval, opts.MaxPollInterval = time.Hour, time.Hour
	spy := &claimSpy{Outbox: ob, claims: make(chan int, 1)}
	f.startRun(f.newRelay(spy, hs, opts))
	spy.awaitEmptyClaims(f.t, 1)
	return handled
}

// awaitHandledPromptly waits until the handler received message id.
func awaitHandledPromptly(t testing.TB, handled <-chan string, id, how string) {
	t.Helper()
	select {
	case got := <-handled:
		require.Equal(t, id, got, "the relay handles the message %s", how)
	case <-time.After(promptly):
		require.FailNow(t, "the idle relay was not woken", "message %s %s was not handled within %v; the relay polls every hour", id, how, promptly)
	}
}

// testRelayRunWakes: a relay that idles with an hour-long poll interval
// handles at once what its own driver commits, on every dialect: an
// Enqueue on the pool, and a unit of work's commit. Where the database
// carries notifications (Capabilities.RemoteNotifications), so does what
// another driver commits.
func testRelayRunWakes(t *testing.T, h Harness) {
	const topic = "conf.relay.woken"
	t.Run("EnqueueOnThePool", func(t *testing.T) {
		t.Parallel()
		f := setup(t, h)
		drv := f.driver(config{})
		handled := f.idleRelay(drv.Outbox(), topic)
		id := f.enqueue(drv.Outbox(), job(topic))[0]
		awaitHandledPromptly(t, handled, id, "enqueued on the pool")
		id = f.enqueue(drv.Bind(f.db).Outbox, job(topic))[0]
		awaitHandledPromptly(t, handled, id, "enqueued through Bind of the pool")
	})
	t.Run("UnitOfWorkCommit", func(t *testing.T) {
		t.Parallel()
		f := setup(t, h)
		drv := f.driver(config{})
		handled := f.idleRelay(drv.Outbox(), topic)
		uow := f.txUnitOfWork(drv, wharf.UnitOfWorkOptions{})
		var ids []string
		require.NoError(t, uow.Transaction(f.ctx, func(ctx context.Context, tx wharf.Tx) error {
			var err error
			ids, err = tx.Outbox.Enqueue(ctx, job(topic))
			return err
		}))
		require.Len(t, ids, 1)
		awaitHandledPromptly(t, handled, ids[0], "enqueued in a unit of work")
	})
	t.Run("EnqueueThroughAnotherDriver", func(t *testing.T) {
		t.Parallel()
		if !h.Capabilities.RemoteNotifications {
			t.Skip("Capabilities.RemoteNotifications is false: this database does not tell a driver what another commits; relays find it by polling")
		}
		f := setup(t, h)
		// Two drivers are two sets of in-process wake-ups: only the
		// database's notification can carry B's commit to A's relay.
		a, b := f.driver(config{}), f.driver(config{})
		handled := f.idleRelay(a.Outbox(), topic)
		id := f.enqueue(b.Outbox(), job(topic))[0]
		awaitHandledPromptly(t, handled, id, "enqueued through another driver")
		uow := f.txUnitOfWork(b, wharf.UnitOfWorkOptions{})
		var ids []string
		require.NoError(t, uow.Transaction(f.ctx, func(ctx context.Context, tx wharf.Tx) error {
			var err error
			ids, err = tx.Outbox.Enqueue(ctx, job(topic))
			return err
		}))
		require.Len(t, ids, 1)
		awaitHandledPromptly(t, handled, ids[0], "enqueued in another driver's unit of work")
	})
}

// testRelayRunPollsWithoutNotifications: a relay on an outbox without
// ports.OutboxNotifier finds a message enqueued while it idles by polling,
// its poll interval backing off between empty claims.
func testRelayRunPollsWithoutNotifications(t *testing.T, h Harness) {
	f := setup(t, h)
	ob := f.outbox(f.db)
	hs := f.handlers(func(hs *relay.Handlers) error {
		return hs.Handle("conf.relay.polled", func(context.Context, ports.ClaimedMessage) error { return nil }, relay.TopicOptions{})
	})
	w := newRelayWatch()
	opts := f.relayOptions(w)
	opts.PollInterval, opts.MaxPollInterval = 5*time.Millisecond, 40*time.Millisecond
	spy := &claimSpy{Outbox: ob, claims: make(chan int, 1)}
	polling := pollingSpy{spy}
	_, notifies := any(polling).(ports.OutboxNotifier)
	require.False(t, notifies, "the relay's outbox hides the notifications")
	stop := f.startRun(f.newRelay(polling, hs, opts))
	// A few empty claims, so the interval has backed off before the
	// message arrives.
	spy.awaitEmptyClaims(t, 4)
	id := f.enqueue(ob, job("conf.relay.polled"))[0]
	w.await(t, relay.OutcomeDelivered, id)
	require.NoError(t, stop())
}

// pollingSpy is a claimSpy that shows only the Outbox methods, so a relay
// on it sees no notifications.
type pollingSpy struct{ ports.Outbox }
