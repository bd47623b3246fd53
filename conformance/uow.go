package conformance

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

func unitOfWorkTests() []testCase {
	return []testCase{
		{"CommitsWhenFnReturnsNil", testUoWCommits},
		{"RollsBackWhenFnReturnsError", testUoWRollsBackOnError},
		{"RollsBackOnPanicAndRepanics", testUoWRollsBackOnPanic},
		{"BuildsFreshPortsForEveryTransaction", testUoWBuildsPerTransaction},
		{"BuildErrorIsReturnedWithoutCallingFn", testUoWBuildError},
		{"PublishesEventsInOrderOnlyAfterCommit", testUoWPublishesAfterCommit},
		{"PublishFailureAfterCommitKeepsData", testUoWPublishFailure},
		{"RejectsInvalidEventsAndRecordsNoneOfTheBatch", testUoWRejectsInvalidEvents},
		{"RetriesRetryableErrorWithFreshTransaction", testUoWRetries},
		{"GivesUpAfterMaxAttempts", testUoWGivesUp},
		{"MaxAttemptsOneDisablesRetry", testUoWMaxAttemptsOne},
		{"DoesNotRetryNonRetryableError", testUoWNoRetryOnOtherErrors},
		{"NestedTransactionJoinsOuterAndRollsBackWithIt", testUoWNestedRollback},
		{"NestedTransactionCommitsAndPublishesWithOuter", testUoWNestedCommit},
		{"OutboxEventsCommitWithTheTransactionAtTheDriversTime", testUoWOutboxEvents},
		{"AfterCommitOutsideAUnitOfWorkIsRefused", testUoWAfterCommitOutside},
		{"AnEscapedContextCannotJoinAnEndedTransaction", testUoWEscapedContext},
	}
}

var (
	errConfRollback = errors.New("conformance: fn asks for a rollback")
	errConfConflict = errors.New("conformance: simulated conflict")
)

// txUnitOfWork builds a unit of work on drv whose transactions hand out
// the driver's whole wharf.Tx (Events, AfterCommit, Outbox, Idempotency).
func (f *fixture) txUnitOfWork(drv *wharf.Driver, opts wharf.UnitOfWorkOptions) ports.UnitOfWork[wharf.Tx] {
	f.t.Helper()
	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (wharf.Tx, error) { return tx, nil }, opts)
	require.NoError(f.t, err, "wharf.NewUnitOfWork")
	return uow
}

// event returns a valid event named name with payload {"n":n}.
func event(name string, n int) ports.Event {
	return ports.Event{Name: name, Payload: raw(fmt.Sprintf(`{"n":%d}`, n))}
}

func testUoWCommits(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	uow, builds := f.unitOfWork(uowConfig{})

	calls := 0
	var inside int
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		calls++
		if err := insertItem(ctx, tx.DB, "a", "alpha"); err != nil {
			return err
		}
		if err := insertItem(ctx, tx.DB, "b", "beta"); err != nil {
			return err
		}
		var err error
		inside, err = countItems(ctx, tx.DB)
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 1, calls, "fn runs once")
	require.Equal(t, 2, inside, "the transaction sees its own writes")
	require.Equal(t, []string{"a", "b"}, f.items(), "both rows are committed")
	require.EqualValues(t, 1, builds.Load(), "the ports are built once per transaction")
}

func testUoWRollsBackOnError(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	bus := &recordingBus{}
	uow, _ := f.unitOfWork(uowConfig{eventBus: bus})

	calls := 0
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		calls++
		if err := insertItem(ctx, tx.DB, "a", "alpha"); err != nil {
			return err
		}
		if err := tx.Events.Record(ctx, event("conf.rolled-back", 1)); err != nil {
			return err
		}
		return errConfRollback
	})
	require.ErrorIs(t, err, errConfRollback, "fn's error is returned (possibly wrapped)")
	require.Equal(t, 1, calls, "a non-retryable error is not retried")
	require.Empty(t, f.items(), "the write is rolled back")
	busCalls, events := bus.snapshot()
	require.Zero(t, busCalls, "nothing is published after a rollback")
	require.Empty(t, events)
}

func testUoWRollsBackOnPanic(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	bus := &recordingBus{}
	uow, _ := f.unitOfWork(uowConfig{eventBus: bus, maxAttempts: 3})

	const panicValue = "conformance: boom"
	calls := 0
	require.PanicsWithValue(t, panicValue, func() {
		_ = uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
			calls++
			if err := insertItem(ctx, tx.DB, "a", "alpha"); err != nil {
				return err
			}
			if err := tx.Events.Record(ctx, event("conf.panicked", 1)); err != nil {
				return err
			}
			panic(panicValue)
		})
	}, "the panic is re-raised with its value after the rollback")
	require.Equal(t, 1, calls, "a panic is not retried")
	require.Empty(t, f.items(), "the write is rolled back")
	busCalls, _ := bus.snapshot()
	require.Zero(t, busCalls, "nothing is published after a panic")

	// The connection is usable again: a later transaction commits.
	require.NoError(t, uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		return insertItem(ctx, tx.DB, "b", "beta")
	}))
	require.Equal(t, []string{"b"}, f.items())
}

func testUoWBuildsPerTransaction(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	uow, builds := f.unitOfWork(uowConfig{})
	for i := range 3 {
		require.NoError(t, uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
			if tx.DB == nil || tx.Events == nil {
				return errors.New("build received a nil transaction or recorder")
			}
			return insertItem(ctx, tx.DB, fmt.Sprintf("item-%d", i), "x")
		}))
	}
	require.EqualValues(t, 3, builds.Load(), "build runs once for every transaction")
	require.Equal(t, []string{"item-0", "item-1", "item-2"}, f.items())
}

func testUoWBuildError(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	errBuild := errors.New("conformance: build failed")
	uow, err := wharf.NewUnitOfWork(f.driver(config{}), func(wharf.Tx) (txPorts, error) {
		return txPorts{}, errBuild
	}, wharf.UnitOfWorkOptions{MaxAttempts: 3})
	require.NoError(t, err, "wharf.NewUnitOfWork")
	calls := 0
	err = uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		calls++
		return nil
	})
	require.ErrorIs(t, err, errBuild, "the build error is returned")
	require.Zero(t, calls, "fn does not run without its ports")

	// The failed transaction released its connection.
	ok, _ := f.unitOfWork(uowConfig{})
	require.NoError(t, ok.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		return insertItem(ctx, tx.DB, "a", "alpha")
	}))
	require.Equal(t, []string{"a"}, f.items())
}

func testUoWPublishesAfterCommit(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	bus := &recordingBus{}
	// At publish time the row must be committed: visible on the root
	// database, outside the transaction.
	bus.check = func(context.Context, []ports.Event) error {
		n, err := countItems(f.ctx, f.db)
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("conformance: published before commit: %d committed rows, want 1", n)
		}
		return nil
	}
	uow, _ := f.unitOfWork(uowConfig{eventBus: bus})

	occurred := time.Date(2029, 5, 6, 7, 8, 9, 123456000, time.UTC)
	explicit := ports.Event{ID: "conf-event-explicit", Name: "conf.third", Payload: raw(`{"n":3}`),
		Headers: map[string]string{"tenant": "t1"}, OccurredAt: occurred}
	var callsDuringFn int
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		if err := insertItem(ctx, tx.DB, "a", "alpha"); err != nil {
			return err
		}
		if err := tx.Events.Record(ctx, event("conf.first", 1), event("conf.second", 2)); err != nil {
			return err
		}
		if err := tx.Events.Record(ctx, explicit); err != nil {
			return err
		}
		bus.mu.Lock()
		callsDuringFn = bus.calls
		bus.mu.Unlock()
		return nil
	})
	require.NoError(t, err, "publishing must happen after commit (the bus checks that the row is committed)")
	require.Zero(t, callsDuringFn, "nothing is published while the transaction is open")

	_, events := bus.snapshot()
	require.Len(t, events, 3, "every recorded event is published once")
	require.Equal(t, []string{"conf.first", "conf.second", "conf.third"},
		[]string{events[0].Name, events[1].Name, events[2].Name}, "events are published in recording order")
	require.JSONEq(t, `{"n":1}`, string(events[0].Payload))
	require.JSONEq(t, `{"n":2}`, string(events[1].Payload))
	require.NotEmpty(t, events[0].ID, "the recorder assigns an ID")
	require.NotEmpty(t, events[1].ID, "the recorder assigns an ID")
	require.NotEqual(t, events[0].ID, events[1].ID, "assigned IDs are unique")
	require.False(t, events[0].OccurredAt.IsZero(), "the recorder sets OccurredAt")
	require.Equal(t, "conf-event-explicit", events[2].ID, "an explicit ID is kept")
	requireTime(t, occurred, events[2].OccurredAt, "an explicit OccurredAt is kept")
	require.Equal(t, map[string]string{"tenant": "t1"}, events[2].Headers)
	require.JSONEq(t, `{"n":3}`, string(events[2].Payload))
}

func testUoWPublishFailure(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	bus := &recordingBus{err: errors.New("conformance: broker down")}
	uow, _ := f.unitOfWork(uowConfig{eventBus: bus, maxAttempts: 3})

	calls := 0
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		calls++
		if err := insertItem(ctx, tx.DB, "a", "alpha"); err != nil {
			return err
		}
		return tx.Events.Record(ctx, event("conf.created", 1))
	})
	require.ErrorIs(t, err, ports.ErrPublishAfterCommit)
	require.Equal(t, 1, calls, "a publish failure does not re-run fn")
	require.Equal(t, []string{"a"}, f.items(), "the data is committed although publishing failed")
}

func testUoWRejectsInvalidEvents(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	bus := &recordingBus{}
	uow, _ := f.unitOfWork(uowConfig{eventBus: bus})

	invalid := map[string]ports.Event{
		"EmptyName":      {Payload: raw(`{}`)},
		"NoPayload":      {Name: "conf.invalid"},
		"InvalidPayload": {Name: "conf.invalid", Payload: raw(`{"n":`)},
	}
	var errs = map[string]error{}
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		for name, ev := range invalid {
			errs[name] = tx.Events.Record(ctx, event("conf.valid-in-bad-batch", 1), ev)
		}
		if err := tx.Events.Record(ctx, event("conf.valid", 2)); err != nil {
			return err
		}
		return insertItem(ctx, tx.DB, "a", "alpha")
	})
	require.NoError(t, err)
	for name := range invalid {
		require.ErrorIs(t, errs[name], ports.ErrInvalidArgument, "Record of a batch with an invalid event (%s)", name)
	}
	_, events := bus.snapshot()
	require.Len(t, events, 1, "only the valid batch is published; the invalid batches recorded nothing")
	require.Equal(t, "conf.valid", events[0].Name)
	require.Equal(t, []string{"a"}, f.items())
}

func testUoWRetries(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	bus := &recordingBus{}
	uow, builds := f.unitOfWork(uowConfig{eventBus: bus, maxAttempts: 3})

	attempt := 0
	var visibleInSecond int
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		attempt++
		if err := insertItem(ctx, tx.DB, fmt.Sprintf("attempt-%d", attempt), "x"); err != nil {
			return err
		}
		if err := tx.Events.Record(ctx, event("conf.attempt", attempt)); err != nil {
			return err
		}
		if attempt == 1 {
			return fmt.Errorf("%w: %w", errConfConflict, ports.ErrRetryable)
		}
		var err error
		visibleInSecond, err = countItems(ctx, tx.DB)
		return err
	})
	require.NoError(t, err, "the second attempt succeeds")
	require.Equal(t, 2, attempt, "fn runs again after a retryable error")
	require.EqualValues(t, 2, builds.Load(), "every attempt gets freshly built ports")
	require.Equal(t, 1, visibleInSecond, "the second attempt does not see the first attempt's row")
	require.Equal(t, []string{"attempt-2"}, f.items(), "only the second attempt's row is committed")
	_, events := bus.snapshot()
	require.Len(t, events, 1, "the failed attempt's events are dropped")
	require.JSONEq(t, `{"n":2}`, string(events[0].Payload))
}

func testUoWGivesUp(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	bus := &recordingBus{}
	uow, _ := f.unitOfWork(uowConfig{eventBus: bus, maxAttempts: 3})

	attempt := 0
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		attempt++
		if err := insertItem(ctx, tx.DB, fmt.Sprintf("attempt-%d", attempt), "x"); err != nil {
			return err
		}
		if err := tx.Events.Record(ctx, event("conf.attempt", attempt)); err != nil {
			return err
		}
		return fmt.Errorf("%w: %w", errConfConflict, ports.ErrRetryable)
	})
	require.ErrorIs(t, err, ports.ErrRetryable, "the last attempt's error is returned")
	require.ErrorIs(t, err, errConfConflict)
	require.Equal(t, 3, attempt, "fn runs MaxAttempts times")
	require.Empty(t, f.items(), "nothing is committed")
	busCalls, _ := bus.snapshot()
	require.Zero(t, busCalls, "nothing is published")
}

func testUoWMaxAttemptsOne(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	uow, _ := f.unitOfWork(uowConfig{maxAttempts: 1})

	calls := 0
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		calls++
		if err := insertItem(ctx, tx.DB, "a", "alpha"); err != nil {
			return err
		}
		return fmt.Errorf("%w: %w", errConfConflict, ports.ErrRetryable)
	})
	require.ErrorIs(t, err, ports.ErrRetryable)
	require.ErrorIs(t, err, errConfConflict)
	require.Equal(t, 1, calls, "MaxAttempts 1 disables retries")
	require.Empty(t, f.items())
}

func testUoWNoRetryOnOtherErrors(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	uow, builds := f.unitOfWork(uowConfig{maxAttempts: 5})

	calls := 0
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		calls++
		if err := insertItem(ctx, tx.DB, "a", "alpha"); err != nil {
			return err
		}
		return errConfRollback
	})
	require.ErrorIs(t, err, errConfRollback)
	require.NotErrorIs(t, err, ports.ErrRetryable, "a plain error is not classified as retryable")
	require.Equal(t, 1, calls, "a non-retryable error is not retried")
	require.EqualValues(t, 1, builds.Load())
	require.Empty(t, f.items())
}

func testUoWNestedRollback(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	bus := &recordingBus{}
	uow, builds := f.unitOfWork(uowConfig{eventBus: bus})

	innerCalls := 0
	var seenByInner, seenByOuter int
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		if err := insertItem(ctx, tx.DB, "outer", "o"); err != nil {
			return err
		}
		err := uow.Transaction(ctx, func(ctx context.Context, inner txPorts) error {
			innerCalls++
			var err error
			if seenByInner, err = countItems(ctx, inner.DB); err != nil {
				return err
			}
			if err := inner.Events.Record(ctx, event("conf.inner", 1)); err != nil {
				return err
			}
			return insertItem(ctx, inner.DB, "inner", "i")
		})
		if err != nil {
			return err
		}
		if seenByOuter, err = countItems(ctx, tx.DB); err != nil {
			return err
		}
		return errConfRollback
	})
	require.ErrorIs(t, err, errConfRollback)
	require.Equal(t, 1, innerCalls)
	require.Equal(t, 1, seenByInner, "the nested call runs in the outer transaction and sees its write")
	require.Equal(t, 2, seenByOuter, "the outer transaction sees the nested call's write")
	require.EqualValues(t, 1, builds.Load(), "joining does not build new ports")
	require.Empty(t, f.items(), "the nested write rolls back with the outer transaction")
	busCalls, _ := bus.snapshot()
	require.Zero(t, busCalls, "the nested call's events are dropped with the rollback")
}

func testUoWNestedCommit(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	bus := &recordingBus{}
	uow, builds := f.unitOfWork(uowConfig{eventBus: bus})

	var callsAfterInner int
	err := uow.Transaction(f.ctx, func(ctx context.Context, tx txPorts) error {
		if err := insertItem(ctx, tx.DB, "outer", "o"); err != nil {
			return err
		}
		if err := tx.Events.Record(ctx, event("conf.outer", 1)); err != nil {
			return err
		}
		err := uow.Transaction(ctx, func(ctx context.Context, inner txPorts) error {
			if err := inner.Events.Record(ctx, event("conf.inner", 2)); err != nil {
				return err
			}
			return insertItem(ctx, inner.DB, "inner", "i")
		})
		bus.mu.Lock()
		callsAfterInner = bus.calls
		bus.mu.Unlock()
		return err
	})
	require.NoError(t, err)
	require.Zero(t, callsAfterInner, "the nested call does not publish: the outer transaction has not committed")
	require.EqualValues(t, 1, builds.Load(), "joining does not build new ports")
	require.Equal(t, []string{"inner", "outer"}, f.items())
	_, events := bus.snapshot()
	require.Len(t, events, 2, "both transactions' events are published once, after the outer commit")
	require.Equal(t, "conf.outer", events[0].Name)
	require.Equal(t, "conf.inner", events[1].Name)
}

// testUoWOutboxEvents records events through Tx.Events, the outbox-backed
// recorder: they roll back with a failed transaction, and commit with a
// successful one as claimable event messages whose OccurredAt is the
// driver's clock (Options.Now), not the real time.
func testUoWOutboxEvents(t *testing.T, h Harness) {
	f := setup(t, h)
	f.createItems()
	drv := f.driver(config{eventKey: func(ev ports.Event) string {
		return ev.Headers["tenant"] // "" for events without one: no key
	}})
	uow := f.txUnitOfWork(drv, wharf.UnitOfWorkOptions{})
	f.clock.Advance(time.Hour) // the recording time differs from clockStart

	err := uow.Transaction(f.ctx, func(ctx context.Context, tx wharf.Tx) error {
		if err := tx.Events.Record(ctx, event("conf.rolled-back", 1)); err != nil {
			return err
		}
		return errConfRollback
	})
	require.ErrorIs(t, err, errConfRollback)
	ob := drv.Outbox()
	require.Empty(t, f.listAll(ob), "the events of a rolled-back transaction are gone")

	recordedAt := f.clock.Now()
	explicit := ports.Event{ID: "conf-outbox-event", Name: "conf.outbox.second", Payload: raw(`{"n":2}`),
		Headers: map[string]string{"tenant": "t1"}}
	require.NoError(t, uow.Transaction(f.ctx, func(ctx context.Context, tx wharf.Tx) error {
		if err := insertItem(ctx, tx.DB, "a", "alpha"); err != nil {
			return err
		}
		return tx.Events.Record(ctx, event("conf.outbox.first", 1), explicit)
	}))
	require.Equal(t, []string{"a"}, f.items())
	f.clock.Advance(time.Minute) // a later claim: OccurredAt stays the recording time

	msgs := f.claim(ob, 10)
	require.Len(t, msgs, 2, "both events committed and are claimable")
	require.Equal(t, []string{"conf.outbox.first", "conf.outbox.second"}, []string{msgs[0].Topic, msgs[1].Topic},
		"in recording order, the event name as topic")
	require.Equal(t, "conf-outbox-event", msgs[1].ID, "the event ID is the message ID")
	require.Equal(t, []string{"", "t1"}, []string{msgs[0].Key, msgs[1].Key},
		"Options.EventKey gives each event's ordering key")
	require.Regexp(t, uuidV7, msgs[0].ID, "an event without ID gets a UUIDv7")
	for _, m := range msgs {
		require.Equal(t, ports.KindEvent, m.Kind)
		require.Equal(t, core.FormatTime(recordedAt), m.Headers[core.HeaderOccurredAt],
			"message %s: OccurredAt is stored from the driver's clock", m.ID)
		ev := core.EventFromMessage(m)
		requireTime(t, recordedAt, ev.OccurredAt, "message %s: OccurredAt is the driver's clock, not the real time", m.ID)
	}
	require.JSONEq(t, `{"n":1}`, string(msgs[0].Payload))
	require.Equal(t, map[string]string{"tenant": "t1"}, core.EventFromMessage(msgs[1]).Headers, "the event's own headers travel too")
	require.NoError(t, ob.Complete(f.ctx, msgs[0].Claim(), msgs[1].Claim()))
	require.Empty(t, f.listAll(ob))
}

// testUoWAfterCommitOutside: only a unit of work publishes after commit,
// so the AfterCommit recorder of a Tx made by Bind refuses every event
// rather than dropping it.
func testUoWAfterCommitOutside(t *testing.T, h Harness) {
	f := setup(t, h)
	drv := f.driver(config{})
	err := drv.Bind(f.db).AfterCommit.Record(f.ctx, event("conf.after-commit", 1))
	require.ErrorIs(t, err, ports.ErrInvalidArgument, "AfterCommit of Bind on the pool")

	tx, err := f.db.BeginTx(f.ctx, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback() })
	err = drv.Bind(tx).AfterCommit.Record(f.ctx, event("conf.after-commit", 2))
	require.ErrorIs(t, err, ports.ErrInvalidArgument, "AfterCommit of Bind on the application's own transaction")
	require.NoError(t, tx.Rollback())
}

// testUoWEscapedContext: a ctx kept after fn returned (by a goroutine, say)
// must not join the ended transaction, nor record AfterCommit events that
// would never be published; both say so, and fn is not called.
func testUoWEscapedContext(t *testing.T, h Harness) {
	f := setup(t, h)
	drv := f.driver(config{})
	uow := f.txUnitOfWork(drv, wharf.UnitOfWorkOptions{EventBus: &recordingBus{}})
	for _, outcome := range []error{nil, errConfRollback} {
		var kept context.Context
		var keptTx wharf.Tx
		err := uow.Transaction(f.ctx, func(ctx context.Context, tx wharf.Tx) error {
			kept, keptTx = ctx, tx
			return outcome
		})
		require.ErrorIs(t, err, outcome)
		called := false
		err = uow.Transaction(kept, func(context.Context, wharf.Tx) error {
			called = true
			return nil
		})
		require.ErrorIs(t, err, sql.ErrTxDone, "joining after the transaction ended (outcome %v)", outcome)
		require.ErrorContains(t, err, "already ended")
		require.False(t, called, "fn is not called on an ended transaction")
		err = keptTx.AfterCommit.Record(kept, event("conf.late", 1))
		require.ErrorIs(t, err, sql.ErrTxDone, "AfterCommit after the transaction ended (outcome %v)", outcome)
	}
}
