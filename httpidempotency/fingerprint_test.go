package httpidempotency_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/httpidempotency"
)

func TestFingerprint(t *testing.T) {
	t.Parallel()
	const js = "application/json"
	tests := []struct {
		name      string
		ctA, a    string
		ctB, b    string
		wantEqual bool
	}{
		{"WhiteSpaceIsInsignificant", js, `{"title":"a"}`, js, " {\n\t\"title\" :  \"a\" }\r\n", true},
		{"MemberOrderIsInsignificant", js, `{"a":1,"b":{"d":[],"c":null}}`, js, `{"b":{"c":null,"d":[]},"a":1}`, true},
		{"StringEscapesAreInsignificant", js, `{"t":"é/\"<"}`, js, `{"t":"\u00e9\/\u0022\u003c"}`, true},
		{"EscapedBackslashBeforeUIsNotASurrogate", js, `{"t":"\\ud800"}`, js, ` {"t":"\\ud800"}`, true},
		{"JSONSuffixTypesAndParameters", js, `{"a":1}`, "application/problem+json; charset=UTF-8", `{ "a":1}`, true},
		{"ArrayOrderMatters", js, `[1,2]`, js, `[2,1]`, false},
		{"NumbersCompareAsWritten", js, `{"n":1}`, js, `{"n":1.0}`, false},
		{"LargeIntegersNeverRoundTogether", js, `{"n":12345678901234567890}`, js, `{"n":12345678901234567891}`, false},
		{"ValuesMatter", js, `{"t":"a"}`, js, `{"t":"b"}`, false},
		{"TypesMatter", js, `{"t":"1"}`, js, `{"t":1}`, false},
		{"NonJSONTypeComparesBytes", "text/plain", `{"a":1}`, "text/plain", `{"a": 1}`, false},
		{"JSONAndNonJSONNeverMatch", js, `{"a":1}`, "text/plain", `{"a":1}`, false},
		{"MissingTypeComparesBytes", "", `{"a":1}`, "", `{"a":1}`, true},
		{"DuplicateNamesCompareBytes", js, `{"a":1,"a":2}`, js, `{"a":1, "a":2}`, false},
		{"LoneSurrogateIsNotTheReplacementCharacter", js, `{"t":"\ud800"}`, js, `{"t":"\ufffd"}`, false},
		{"UpperCaseSurrogateEscape", js, `{"t":"\uDC00"}`, js, `{"t":"\ufffd"}`, false},
		{"InvalidUTF8IsNotTheReplacementCharacter", js, "{\"t\":\"\xff\"}", js, `{"t":"` + "\uFFFD" + `"}`, false},
		{"TrailingDataComparesBytes", js, `{"a":1} {}`, js, `{"a":1}  {}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fp := func(ct, body string) string {
				r := httptest.NewRequest("POST", "/todos?x=1", strings.NewReader(body))
				if ct != "" {
					r.Header.Set("Content-Type", ct)
				}
				return httpidempotency.Fingerprint(r, []byte(body))
			}
			a, b := fp(tt.ctA, tt.a), fp(tt.ctB, tt.b)
			require.Len(t, a, 64)
			if tt.wantEqual {
				require.Equal(t, a, b)
			} else {
				require.NotEqual(t, a, b)
			}
		})
	}
	t.Run("PathQueryAndMethodMatter", func(t *testing.T) {
		t.Parallel()
		fp := func(method, target string) string {
			r := httptest.NewRequest(method, target, nil)
			r.Header.Set("Content-Type", js)
			return httpidempotency.Fingerprint(r, []byte(`{}`))
		}
		base := fp("POST", "/a?x=1")
		for _, other := range []string{fp("PATCH", "/a?x=1"), fp("POST", "/b?x=1"), fp("POST", "/a?x=2")} {
			require.NotEqual(t, base, other)
		}
	})
}
