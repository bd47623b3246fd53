package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/examples/todo/internal/domain"
)

func TestNormalizeTitle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		title   string
		want    string
		wantErr string
	}{
		{name: "Plain", title: "buy milk", want: "buy milk"},
		{name: "Trimmed", title: "  buy milk \n", want: "buy milk"},
		{name: "Unicode", title: "café ☕", want: "café ☕"},
		{name: "ExactlyMaxLength", title: strings.Repeat("é", domain.MaxTitleLength), want: strings.Repeat("é", domain.MaxTitleLength)},
		{name: "Empty", title: "", wantErr: "must not be empty"},
		{name: "Blank", title: " \t ", wantErr: "must not be empty"},
		{name: "TooLong", title: strings.Repeat("é", domain.MaxTitleLength+1), wantErr: "201 characters long; the limit is 200"},
		{name: "ControlCharacter", title: "a\x07b", wantErr: "control character U+0007"},
		{name: "InnerNewline", title: "a\nb", wantErr: "control character U+000A"},
		{name: "InvalidUTF8", title: "a\xffb", wantErr: "not valid UTF-8"},
		{name: "LineSeparator", title: "a\u2028b", wantErr: "control character U+2028"},
		{name: "ParagraphSeparator", title: "a\u2029b", wantErr: "control character U+2029"},
		{name: "RightToLeftOverride", title: "invoice\u202Efdp.exe", wantErr: "bidirectional control character U+202E"},
		{name: "LeftToRightEmbedding", title: "a\u202Ab", wantErr: "bidirectional control character U+202A"},
		{name: "PopDirectionalFormatting", title: "a\u202Cb", wantErr: "bidirectional control character U+202C"},
		{name: "RightToLeftIsolate", title: "a\u2067b", wantErr: "bidirectional control character U+2067"},
		{name: "PopDirectionalIsolate", title: "a\u2069b", wantErr: "bidirectional control character U+2069"},
		{name: "RightToLeftText", title: "שלום עולם", want: "שלום עולם"},
		{name: "DirectionalMarksAreAllowed", title: "GPT\u200F-4 \u200Eשלום\u061C", want: "GPT\u200F-4 \u200Eשלום\u061C"},
		{name: "ReplacementCharacterIsText", title: "a\uFFFDb", want: "a\uFFFDb"},
		{name: "JoinersInEmoji", title: "👩\u200D💻 ship it", want: "👩\u200D💻 ship it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.NormalizeTitle(tt.title)
			if tt.wantErr != "" {
				var verr *domain.ValidationError
				require.True(t, errors.As(err, &verr), "a *ValidationError: %v", err)
				require.Equal(t, "title", verr.Field)
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestValidateID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{name: "UUIDv7", id: "0192f7e0-6c1a-7b3e-9f4d-2a5b8c9d0e1f", ok: true},
		{name: "UpperCase", id: "0192F7E0-6C1A-7B3E-9F4D-2A5B8C9D0E1F"},
		{name: "NoDashes", id: "0192f7e06c1a7b3e9f4d2a5b8c9d0e1f"},
		{name: "TooShort", id: "0192f7e0"},
		{name: "NotHex", id: "0192f7e0-6c1a-7b3e-9f4d-2a5b8c9d0e1g"},
		{name: "DashMisplaced", id: "0192f7e06-c1a-7b3e-9f4d-2a5b8c9d0e1f"},
		{name: "Empty", id: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := domain.ValidateID(tt.id)
			if tt.ok {
				require.NoError(t, err)
				return
			}
			var verr *domain.ValidationError
			require.True(t, errors.As(err, &verr))
			require.Equal(t, "id", verr.Field)
		})
	}
}

func TestCompleteIsIdempotent(t *testing.T) {
	t.Parallel()
	created := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	td, err := domain.NewTodo("0192f7e0-6c1a-7b3e-9f4d-2a5b8c9d0e1f", " walk ", created)
	require.NoError(t, err)
	require.Equal(t, "walk", td.Title)
	require.False(t, td.Completed())

	done := created.Add(time.Hour)
	require.True(t, td.Complete(done))
	require.Equal(t, done, td.CompletedAt)
	require.Equal(t, done, td.UpdatedAt)
	require.False(t, td.Complete(done.Add(time.Hour)), "completing twice changes nothing")
	require.Equal(t, done, td.CompletedAt)
}
