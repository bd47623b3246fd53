package core_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

func TestFormatTimeIsFixedWidthAndSortsChronologically(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	times := []time.Time{
		base.Add(999999 * time.Microsecond),
		base,
		base.Add(100 * time.Millisecond),
		base.Add(123456 * time.Microsecond),
		base.Add(time.Second),
		base.In(time.FixedZone("x", 7200)).Add(time.Microsecond),
	}
	strs := make([]string, len(times))
	for i, tm := range times {
		strs[i] = core.FormatTime(tm)
		require.Len(t, strs[i], len(core.TimeFormat))
		require.True(t, strings.HasSuffix(strs[i], "Z"))
		back, err := core.ParseTime(strs[i])
		require.NoError(t, err)
		require.True(t, back.Equal(tm.Truncate(time.Microsecond)), "%s round-trips", strs[i])
	}
	sort.Strings(strs)
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	for i := range times {
		require.Equal(t, core.FormatTime(times[i]), strs[i])
	}
}

func TestParseTimeRejectsOtherFormats(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.1Z", "2026-01-02T03:04:05.000000+02:00", "2026-13-02T03:04:05.000000Z"} {
		_, err := core.ParseTime(s)
		require.Error(t, err, s)
	}
}

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// TestNewIDIsUUIDv7AndStrictlyIncreasing: IDs are UUIDv7 (version and
// variant bits, a current millisecond timestamp) and strictly increasing
// within the process: in a tight sequential loop (faster than the clock
// ticks, so the sub-millisecond counter must carry), within each of many
// concurrent goroutines, and across goroutines (no duplicates, and an ID
// made after they finished sorts after all of theirs).
func TestNewIDIsUUIDv7AndStrictlyIncreasing(t *testing.T) {
	t.Parallel()
	checkV7 := func(t *testing.T, id string, notBefore, notAfter time.Time) {
		t.Helper()
		require.Regexp(t, uuidV7, id)
		u, err := uuid.Parse(id)
		require.NoError(t, err)
		require.Equal(t, uuid.Version(7), u.Version())
		require.Equal(t, uuid.RFC4122, u.Variant())
		sec, nsec := u.Time().UnixTime()
		at := time.Unix(sec, nsec)
		require.False(t, at.Before(notBefore.Truncate(time.Millisecond)), "%s: timestamp %v before %v", id, at, notBefore)
		require.False(t, at.After(notAfter), "%s: timestamp %v after %v", id, at, notAfter)
	}

	t.Run("Sequential", func(t *testing.T) {
		t.Parallel()
		const n = 50000
		before := time.Now()
		ids := make([]string, n)
		for i := range ids {
			ids[i] = core.NewID()
		}
		// The counter may run a little ahead of the clock when it carries.
		after := time.Now().Add(time.Second)
		for i, id := range ids {
			if i > 0 {
				require.Greater(t, id, ids[i-1], "call %d", i)
			}
		}
		checkV7(t, ids[0], before, after)
		checkV7(t, ids[n-1], before, after)
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		const goroutines, per = 16, 5000
		before := time.Now()
		var mu sync.Mutex
		all := make([]string, 0, goroutines*per)
		var wg sync.WaitGroup
		for range goroutines {
			wg.Add(1)
			go func() {
				defer wg.Done()
				local := make([]string, per)
				for i := range local {
					local[i] = core.NewID()
					if i > 0 && local[i] <= local[i-1] {
						t.Errorf("ids not increasing within a goroutine: %s after %s", local[i], local[i-1])
						return
					}
				}
				mu.Lock()
				all = append(all, local...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		last := core.NewID()
		after := time.Now().Add(time.Second)
		require.Len(t, all, goroutines*per)
		sort.Strings(all)
		for i, id := range all {
			if i > 0 {
				require.NotEqual(t, all[i-1], id, "duplicate id")
			}
		}
		require.Greater(t, last, all[len(all)-1], "an ID made after the goroutines finished sorts after all of theirs")
		checkV7(t, all[0], before, after)
		checkV7(t, all[len(all)-1], before, after)
		checkV7(t, last, before, after)
	})
}

type created struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

func TestTypedEventsRoundTrip(t *testing.T) {
	t.Parallel()
	ev := core.DefineEvent[created]("todo.created")
	require.Equal(t, "todo.created", ev.Name())
	e, err := ev.New(created{ID: "1", Title: "milk"})
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"1","title":"milk"}`, string(e.Payload))
	got, err := ev.Decode(e)
	require.NoError(t, err)
	require.Equal(t, created{ID: "1", Title: "milk"}, got)

	_, err = core.DefineEvent[created]("other").Decode(e)
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	_, err = ev.DecodePayload(json.RawMessage(`{"id":`))
	require.Error(t, err)
}

// TestDefineEventWithEmptyNameFailsOnUse: DefineEvent never panics (a
// package-level definition cannot crash a program at init); every use of
// an unnamed definition is an error instead, and records nothing.
func TestDefineEventWithEmptyNameFailsOnUse(t *testing.T) {
	t.Parallel()
	var ev core.EventType[created]
	require.NotPanics(t, func() { ev = core.DefineEvent[created]("") })
	require.Empty(t, ev.Name())

	e, err := ev.New(created{ID: "1"})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	require.ErrorContains(t, err, "empty name")
	require.Equal(t, ports.Event{}, e)

	recorded := 0
	rec := ports.EventRecorderFunc(func(context.Context, ...ports.Event) error { recorded++; return nil })
	err = ev.Record(context.Background(), rec, created{ID: "1"})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	require.Zero(t, recorded, "nothing reaches the recorder")
}

// enqueueOnly is a ports.Outbox that records what Enqueue receives; the
// recorder calls nothing else.
type enqueueOnly struct {
	ports.Outbox
	got []ports.OutboxMessage
	err error
}

func (o *enqueueOnly) Enqueue(_ context.Context, msgs ...ports.OutboxMessage) ([]string, error) {
	if o.err != nil {
		return nil, o.err
	}
	o.got = append(o.got, msgs...)
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids, nil
}

// TestOutboxEventRecorderValidatesAndFillsDefaults: the recorder (through
// which events reach the outbox) gives events without one a UUIDv7 ID and
// OccurredAt = now, stores them as event messages that EventFromMessage
// turns back into the same event, and rejects an invalid event without
// enqueueing any of the batch.
func TestOutboxEventRecorderValidatesAndFillsDefaults(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	_, err := core.NewOutboxEventRecorder(nil, core.OutboxEventRecorderOptions{})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)

	ob := &enqueueOnly{}
	rec, err := core.NewOutboxEventRecorder(ob, core.OutboxEventRecorderOptions{
		Now:         func() time.Time { return now },
		MaxAttempts: 4,
		Key:         func(e ports.Event) string { return "key-" + e.Name },
	})
	require.NoError(t, err)
	require.NoError(t, rec.Record(ctx), "an empty batch is nothing to do")
	require.Empty(t, ob.got)

	require.NoError(t, rec.Record(ctx, ports.Event{Name: "x", Payload: json.RawMessage(`{}`), Headers: map[string]string{"h": "v"}}))
	require.Len(t, ob.got, 1)
	m := ob.got[0]
	require.True(t, uuidV7.MatchString(m.ID), "a UUIDv7 ID is filled in: %q", m.ID)
	require.Equal(t, ports.KindEvent, m.Kind)
	require.Equal(t, "x", m.Topic)
	require.Equal(t, "key-x", m.Key)
	require.Equal(t, 4, m.MaxAttempts)
	require.Equal(t, core.FormatTime(now), m.Headers[core.HeaderOccurredAt], "OccurredAt defaults to now")
	back := core.EventFromMessage(ports.ClaimedMessage{ID: m.ID, Topic: m.Topic, Payload: m.Payload, Headers: m.Headers})
	require.Equal(t, ports.Event{ID: m.ID, Name: "x", Payload: json.RawMessage(`{}`), Headers: map[string]string{"h": "v"}, OccurredAt: now}, back)

	for _, bad := range []ports.Event{{Payload: json.RawMessage(`{}`)}, {Name: "x"}, {Name: "x", Payload: json.RawMessage(`{`)}} {
		err := rec.Record(ctx, ports.Event{Name: "ok", Payload: json.RawMessage(`{}`)}, bad)
		require.ErrorIs(t, err, ports.ErrInvalidArgument, "%+v", bad)
		require.Len(t, ob.got, 1, "an invalid event records nothing of its batch")
	}

	boom := errors.New("boom")
	ob.err = boom
	require.ErrorIs(t, rec.Record(ctx, ports.Event{Name: "x", Payload: json.RawMessage(`{}`)}), boom)
}

func TestFingerprintLengthPrefixesParts(t *testing.T) {
	t.Parallel()
	require.NotEqual(t, core.Fingerprint([]byte("ab"), []byte("c")), core.Fingerprint([]byte("a"), []byte("bc")))
	require.Equal(t, core.Fingerprint([]byte("a"), []byte("b")), core.Fingerprint([]byte("a"), []byte("b")))
	require.Len(t, core.Fingerprint(), 64)
}

func TestNilArgumentsAreErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ev := core.DefineEvent[struct{}]("ev")
	_, _, err := core.RunIdempotently(ctx, nil, ports.ReserveRequest{}, func(context.Context) (int, error) { return 1, nil })
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	require.ErrorContains(t, err, "nil store")
	store := struct{ ports.Idempotency }{} // never called: fn is checked first
	_, _, err = core.RunIdempotently[int](ctx, store, ports.ReserveRequest{}, nil)
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	require.ErrorContains(t, err, "nil fn")
	err = ev.Record(ctx, nil, struct{}{})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	require.ErrorContains(t, err, "nil recorder")
}
