package core_test

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

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

func TestValidateIdentifier(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"PlainTable", "outbox_messages", true},
		{"SchemaQualified", "app.outbox", true},
		{"LeadingUnderscore", "_x1", true},
		{"Empty", "", false},
		{"Space", "bad name", false},
		{"Injection", "x;drop table y", false},
		{"Quote", `x"y`, false},
		{"LeadingDigit", "1abc", false},
		{"ThreeParts", "a.b.c", false},
		{"EmptyPart", "a.", false},
		{"TooLong", strings.Repeat("a", 64), false},
		{"NonASCII", "tablé", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := core.ValidateIdentifier(tt.in)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
		})
	}
}

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewIDIsUUIDv7AndStrictlyIncreasing(t *testing.T) {
	t.Parallel()
	const goroutines, per = 8, 5000
	var mu sync.Mutex
	all := make([]string, 0, goroutines*per)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev := ""
			local := make([]string, per)
			for i := range local {
				id := core.NewID()
				if !uuidV7.MatchString(id) {
					t.Errorf("not a UUIDv7: %s", id)
					return
				}
				if id <= prev {
					t.Errorf("ids not increasing within a goroutine: %s after %s", id, prev)
					return
				}
				prev, local[i] = id, id
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	seen := make(map[string]bool, len(all))
	for _, id := range all {
		require.False(t, seen[id], "duplicate id %s", id)
		seen[id] = true
	}
	require.Len(t, core.NewToken(), 32)
	require.NotEqual(t, core.NewToken(), core.NewToken())
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	exact := core.Backoff{Initial: time.Second, Factor: 2, Max: 10 * time.Second, NoJitter: true}
	for attempt, want := range map[int]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 500: 10 * time.Second} {
		require.Equal(t, want, exact.Delay(attempt), "attempt %d", attempt)
	}
	jittered := core.Backoff{Initial: time.Second, Jitter: 0.5, Max: time.Hour}
	seen := map[time.Duration]bool{}
	for i := 0; i < 200; i++ {
		d := jittered.Delay(3)
		require.GreaterOrEqual(t, d, 2*time.Second)
		require.LessOrEqual(t, d, 6*time.Second)
		seen[d] = true
	}
	require.Greater(t, len(seen), 1, "jitter varies the delay")
	require.LessOrEqual(t, core.Backoff{Initial: time.Second, Max: 2 * time.Second, Jitter: 1}.Delay(10), 2*time.Second, "jitter never exceeds Max")

	require.NoError(t, core.Backoff{}.Validate())
	for _, bad := range []core.Backoff{{Initial: -1}, {Factor: 0.5}, {Initial: time.Hour, Max: time.Minute}, {Jitter: 2}} {
		require.ErrorIs(t, bad.Validate(), ports.ErrInvalidArgument, "%+v", bad)
	}
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
	require.Panics(t, func() { core.DefineEvent[created]("") })
}

func TestPrepareEventValidatesAndFillsDefaults(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e := ports.Event{Name: "x", Payload: json.RawMessage(`{}`)}
	require.NoError(t, core.PrepareEvent(&e, now))
	require.True(t, uuidV7.MatchString(e.ID))
	require.Equal(t, now, e.OccurredAt)
	for _, bad := range []ports.Event{{Payload: json.RawMessage(`{}`)}, {Name: "x"}, {Name: "x", Payload: json.RawMessage(`{`)}} {
		require.ErrorIs(t, core.PrepareEvent(&bad, now), ports.ErrInvalidArgument)
	}
}

func TestScopeKeyAndFingerprint(t *testing.T) {
	t.Parallel()
	a, err := core.ScopeKey(map[string]string{"b": "2", "a": "1"})
	require.NoError(t, err)
	b, err := core.ScopeKey(map[string]string{"a": "1", "b": "2"})
	require.NoError(t, err)
	require.Equal(t, a, b)
	empty, err := core.ScopeKey(nil)
	require.NoError(t, err)
	require.Equal(t, "", empty)
	require.NotEqual(t, core.Fingerprint([]byte("ab"), []byte("c")), core.Fingerprint([]byte("a"), []byte("bc")))
	require.NotEqual(t, core.StorageKey("n", "k", ""), core.StorageKey("n", "k", `{"a":"1"}`))
	require.Len(t, core.StorageKey("n", "k", ""), 64)

	_, err = core.ValidateIdempotencyKey(ports.IdempotencyKey{Namespace: "n", Key: strings.Repeat("é", 256)})
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	_, err = core.ValidateIdempotencyKey(ports.IdempotencyKey{Namespace: "n", Key: strings.Repeat("é", 255)})
	require.NoError(t, err)
}

func TestCheckLength(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, value, wantErr string
	}{
		{"AcceptsTheLimit", strings.Repeat("é", 255), ""},
		{"AcceptsEmpty", "", ""},
		{"RejectsOneCharacterOver", strings.Repeat("é", 256), "topic is 256 characters; the limit is 255"},
		{"RejectsInvalidUTF8", "a\xffb", "topic is not valid UTF-8"},
		{"RejectsNUL", "ab\x00c", "topic contains a NUL byte at offset 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := core.CheckLength("topic", tc.value)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
