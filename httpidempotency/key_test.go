package httpidempotency_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/httpidempotency"
	"github.com/wharf-go/wharf/ports"
)

func TestParseKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		value   string
		want    string
		wantErr string
	}{
		{name: "BareUUID", value: "4f1c2a7e-2f47-4c2b-9d8f-0a3c6f1e9b10", want: "4f1c2a7e-2f47-4c2b-9d8f-0a3c6f1e9b10"},
		{name: "QuotedStructuredFieldString", value: `"8e03978e-40d5-43e8-bc93-6894a57f9324"`, want: "8e03978e-40d5-43e8-bc93-6894a57f9324"},
		{name: "QuotedWithEscapes", value: `"a\"b\\c"`, want: `a"b\c`},
		{name: "SurroundingSpacesIgnored", value: "  key-1\t", want: "key-1"},
		{name: "InnerSpacesKept", value: "order 42", want: "order 42"},
		{name: "ExactlyMaxLength", value: strings.Repeat("k", httpidempotency.MaxKeyLength), want: strings.Repeat("k", httpidempotency.MaxKeyLength)},
		{name: "Empty", value: "", wantErr: "is empty"},
		{name: "Blank", value: "   ", wantErr: "is empty"},
		{name: "EmptyQuoted", value: `""`, wantErr: "is empty"},
		{name: "TooLong", value: strings.Repeat("k", httpidempotency.MaxKeyLength+1), wantErr: "256 characters long; the limit is 255"},
		{name: "ControlCharacter", value: "key\x01x", wantErr: "non-printable or non-ASCII byte 0x01"},
		{name: "InnerTab", value: "key\tx", wantErr: "non-printable or non-ASCII byte 0x09"},
		{name: "NonASCII", value: "clé", wantErr: "non-printable or non-ASCII byte 0xc3"},
		{name: "UnterminatedQuote", value: `"abc`, wantErr: "never closes it"},
		{name: "TextAfterClosingQuote", value: `"abc"def`, wantErr: "text after its closing quote"},
		{name: "InvalidEscape", value: `"a\nb"`, wantErr: "invalid escape"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := httpidempotency.ParseKey(tt.value)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ports.ErrInvalidArgument)
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
