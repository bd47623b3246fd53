package check_test

import (
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/ports"
)

func TestInvalidf(t *testing.T) {
	t.Parallel()
	err := check.Invalidf("topic %q is %s", "t", "bad")
	require.ErrorIs(t, err, ports.ErrInvalidArgument)
	require.Equal(t, `topic "t" is bad: `+ports.ErrInvalidArgument.Error(), err.Error())
	require.Equal(t, ports.ErrInvalidArgument, errors.Unwrap(err), "the sentinel is the only wrapped error")
}

func TestIdentifier(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr string // "" for valid
	}{
		{"PlainTable", "outbox_messages", ""},
		{"SchemaQualified", "app.outbox", ""},
		{"LeadingUnderscore", "_x1", ""},
		{"MixedCase", "App.Outbox_2", ""},
		{"AtTheLimit", strings.Repeat("a", check.MaxIdentifierLength), ""},
		{"EachPartAtTheLimit", strings.Repeat("a", 63) + "." + strings.Repeat("b", 63), ""},
		{"Empty", "", "identifier is empty"},
		{"Space", "bad name", `character ' ' at position 3 of "bad name"`},
		{"Injection", "x;drop table y", `character ';'`},
		{"Quote", `x"y`, `character '"'`},
		{"Backtick", "x`y", "character '`'"},
		{"LeadingDigit", "1abc", `character '1' at position 0`},
		{"LeadingDigitInSchemaPart", "app.1abc", `character '1' at position 0 of "1abc"`},
		{"ThreeParts", "a.b.c", "has 3 dot-separated parts"},
		{"EmptyPart", "a.", "empty part"},
		{"EmptySchema", ".a", "empty part"},
		{"TooLong", strings.Repeat("a", 64), "is 64 characters; the limit is 63"},
		{"SchemaPartTooLong", strings.Repeat("s", 64) + ".t", "is 64 characters; the limit is 63"},
		{"NonASCII", "tablé", "is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := check.Identifier(tt.in)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestLength(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value, wantErr string
	}{
		{"AcceptsTheLimit", strings.Repeat("é", check.MaxKeyLength), ""},
		{"AcceptsEmpty", "", ""},
		{"CountsCharactersNotBytes", strings.Repeat("é", 200), ""},
		{"RejectsOneCharacterOver", strings.Repeat("é", 256), "topic is 256 characters; the limit is 255"},
		{"RejectsInvalidUTF8", "a\xffb", "topic is not valid UTF-8"},
		{"RejectsNUL", "ab\x00c", "topic contains a NUL byte at offset 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := check.Length("topic", tt.value)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestEvent(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t.Run("FillsDefaults", func(t *testing.T) {
		t.Parallel()
		e := ports.Event{Name: "x", Payload: json.RawMessage(`{}`)}
		require.NoError(t, check.Event(&e, now))
		require.Regexp(t, uuidV7, e.ID)
		require.Equal(t, now, e.OccurredAt)
	})
	t.Run("KeepsGivenValues", func(t *testing.T) {
		t.Parallel()
		at := now.Add(-time.Hour)
		e := ports.Event{ID: "given", Name: "x", Payload: json.RawMessage(`null`), OccurredAt: at}
		require.NoError(t, check.Event(&e, now))
		require.Equal(t, "given", e.ID)
		require.Equal(t, at, e.OccurredAt)
	})
	tests := []struct {
		name    string
		ev      ports.Event
		wantErr string
	}{
		{"EmptyName", ports.Event{Payload: json.RawMessage(`{}`)}, "empty Name"},
		{"NoPayload", ports.Event{Name: "x"}, `event "x" has no payload`},
		{"InvalidJSON", ports.Event{Name: "x", Payload: json.RawMessage(`{`)}, `event "x" payload is not valid JSON`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := tt.ev
			err := check.Event(&ev, now)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tt.wantErr)
			require.Empty(t, ev.ID, "an invalid event is not filled in")
		})
	}
}

func TestNewIDIsUUIDv7AndIncreasing(t *testing.T) {
	t.Parallel()
	prev := ""
	for range 1000 {
		id := check.NewID()
		require.Regexp(t, uuidV7, id)
		require.Greater(t, id, prev)
		prev = id
	}
}
