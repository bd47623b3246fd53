package httpidempotency

import (
	"fmt"
	"strings"

	"github.com/wharf-go/wharf/internal/check"
)

// MaxKeyLength is the longest accepted Idempotency-Key, in characters (the
// limit of ports.IdempotencyKey.Key).
const MaxKeyLength = check.MaxKeyLength

// ParseKey validates an Idempotency-Key header value and returns the key.
//
// The draft defines the value as a Structured Field string, so a quoted value
// ("abc", with \" and \\ escapes) is unquoted; a bare value (abc), as Stripe's
// clients send it, is taken as it is. Surrounding spaces and tabs are
// ignored. The key must be 1 to MaxKeyLength characters of printable ASCII
// (0x20-0x7E) and not blank. Any other value is an error matching
// ports.ErrInvalidArgument whose text says what is wrong.
func ParseKey(value string) (string, error) {
	v := strings.Trim(value, " \t")
	key := v
	if strings.HasPrefix(v, `"`) {
		var err error
		if key, err = unquoteSFString(v); err != nil {
			return "", err
		}
	}
	if strings.TrimSpace(key) == "" {
		return "", check.Invalidf("the %s header is empty; send a unique value such as a UUID", HeaderKey)
	}
	if len(key) > MaxKeyLength {
		return "", check.Invalidf("the %s header is %d characters long; the limit is %d", HeaderKey, len(key), MaxKeyLength)
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return "", check.Invalidf("the %s header has a non-printable or non-ASCII byte 0x%02x at position %d; use printable ASCII such as a UUID", HeaderKey, c, i)
		}
	}
	return key, nil
}

// unquoteSFString parses an RFC 8941 sf-string: DQUOTE *(unescaped / "\"
// (DQUOTE / "\")) DQUOTE, and nothing after it.
func unquoteSFString(v string) (string, error) {
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		switch c {
		case '\\':
			if i+1 >= len(v) || (v[i+1] != '"' && v[i+1] != '\\') {
				return "", check.Invalidf("the %s header %s has an invalid escape; only \\\" and \\\\ are allowed in a quoted key", HeaderKey, truncate(v))
			}
			i++
			b.WriteByte(v[i])
		case '"':
			if i != len(v)-1 {
				return "", check.Invalidf("the %s header %s has text after its closing quote", HeaderKey, truncate(v))
			}
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return "", check.Invalidf("the %s header %s opens a quoted string but never closes it", HeaderKey, truncate(v))
}

// truncate quotes v for an error message, cut to a readable length.
func truncate(v string) string {
	const limit = 40
	if len(v) > limit {
		v = v[:limit] + "..."
	}
	return fmt.Sprintf("%q", v)
}
