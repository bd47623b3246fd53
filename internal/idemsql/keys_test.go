package idemsql

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
)

func TestScopeKeyIsCanonical(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		scope map[string]string
		want  string
	}{
		{"NilIsEmpty", nil, ""},
		{"EmptyMapIsEmpty", map[string]string{}, ""},
		{"OneEntry", map[string]string{"tenant": "t1"}, `{"tenant":"t1"}`},
		{"KeysSorted", map[string]string{"b": "2", "a": "1", "c": "3"}, `{"a":"1","b":"2","c":"3"}`},
		{"ValuesEscaped", map[string]string{"a": `"x"`}, `{"a":"\"x\""}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := scopeKey(tt.scope)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	t.Run("EqualMapsGiveEqualKeys", func(t *testing.T) {
		t.Parallel()
		a, err := scopeKey(map[string]string{"b": "2", "a": "1"})
		require.NoError(t, err)
		b, err := scopeKey(map[string]string{"a": "1", "b": "2"})
		require.NoError(t, err)
		require.Equal(t, a, b)
	})
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestStorageKeyIsFixedLengthAndLengthPrefixed(t *testing.T) {
	t.Parallel()
	base := storageKey("n", "k", "")
	require.Regexp(t, hex64, base)
	require.Regexp(t, hex64, storageKey(strings.Repeat("n", 255), strings.Repeat("é", 255), `{"a":"1"}`), "long parts give the same length")
	require.Equal(t, base, storageKey("n", "k", ""), "deterministic")
	require.Equal(t, core.Fingerprint([]byte("n"), []byte("k"), []byte("")), base)

	// Parts that concatenate to the same text are kept apart by the length
	// prefixes.
	distinct := []struct{ ns, key, scope string }{
		{"n", "k", ""},
		{"n", "k", `{"a":"1"}`},
		{"ab", "c", ""},
		{"a", "bc", ""},
		{"n", "", "k"},
		{"", "n", "k"},
		{"nk", "", ""},
	}
	seen := map[string]int{}
	for i, d := range distinct {
		k := storageKey(d.ns, d.key, d.scope)
		j, dup := seen[k]
		require.False(t, dup, "%+v and %+v share a storage key", d, distinct[j])
		seen[k] = i
	}
}

func TestValidateKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		key       ports.IdempotencyKey
		wantScope string
		wantErr   string // "" for valid
	}{
		{"KeyAtTheLimit", ports.IdempotencyKey{Namespace: "n", Key: strings.Repeat("é", 255)}, "", ""},
		{"ReturnsCanonicalScope", ports.IdempotencyKey{Namespace: "n", Key: "k", Scope: map[string]string{"b": "2", "a": "1"}}, `{"a":"1","b":"2"}`, ""},
		{"NamespaceAtTheLimit", ports.IdempotencyKey{Namespace: strings.Repeat("n", 255), Key: "k"}, "", ""},
		{"KeyOneCharacterOver", ports.IdempotencyKey{Namespace: "n", Key: strings.Repeat("é", 256)}, "", "idempotency key is 256 characters"},
		{"NamespaceOneCharacterOver", ports.IdempotencyKey{Namespace: strings.Repeat("n", 256), Key: "k"}, "", "idempotency namespace is 256 characters"},
		{"EmptyNamespace", ports.IdempotencyKey{Key: "k"}, "", "idempotency namespace is empty"},
		{"EmptyKey", ports.IdempotencyKey{Namespace: "n"}, "", "idempotency key is empty"},
		{"NULInKey", ports.IdempotencyKey{Namespace: "n", Key: "a\x00b"}, "", "idempotency key contains a NUL byte"},
		{"InvalidUTF8Namespace", ports.IdempotencyKey{Namespace: "a\xff", Key: "k"}, "", "idempotency namespace is not valid UTF-8"},
		{"OverlongScope", ports.IdempotencyKey{Namespace: "n", Key: "k", Scope: map[string]string{"s": strings.Repeat("v", 250)}}, "", "idempotency scope is 258 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sk, err := validateKey(tt.key)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, tt.wantScope, sk)
				return
			}
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// TestReservationTokensAreRandom: the tokens that fence a reservation
// (sqlbase.NewToken) are 128-bit random hex strings.
func TestReservationTokensAreRandom(t *testing.T) {
	t.Parallel()
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	for range 1000 {
		tok := sqlbase.NewToken()
		require.Regexp(t, hex32, tok)
		require.False(t, seen[tok], "duplicate token %s", tok)
		seen[tok] = true
	}
}
