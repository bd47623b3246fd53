// Package check holds the argument checks that wharf's packages share:
// errors that match ports.ErrInvalidArgument, bounded text values,
// SQL identifiers and events. It imports ports only, so core, the relay
// and the providers can all use it.
package check

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/wharf-go/wharf/ports"
)

// MaxKeyLength bounds outbox topics, keys and IDs and idempotency
// namespaces, keys, scope keys and fingerprints, in characters. Every
// dialect enforces it in Go before writing, so nothing is ever truncated.
const MaxKeyLength = 255

// MaxIdentifierLength bounds each part of a table name (PostgreSQL's limit
// is 63 bytes, MySQL's 64).
const MaxIdentifierLength = 63

// Invalidf returns an error matching ports.ErrInvalidArgument whose text is
// the formatted message.
func Invalidf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ports.ErrInvalidArgument)
}

// Length checks a value stored in a bounded text column: at most
// MaxKeyLength characters, valid UTF-8 and no NUL byte (PostgreSQL cannot
// store NUL in text and MySQL drivers may drop it, so every dialect refuses
// it). The error names what.
func Length(what, v string) error {
	if n := utf8.RuneCountInString(v); n > MaxKeyLength {
		return Invalidf("%s is %d characters; the limit is %d (use a shorter value or a hash of it)", what, n, MaxKeyLength)
	}
	if !utf8.ValidString(v) {
		return Invalidf("%s is not valid UTF-8", what)
	}
	if i := strings.IndexByte(v, 0); i >= 0 {
		return Invalidf("%s contains a NUL byte at offset %d; databases cannot store it the same way (remove it, or encode the value)", what, i)
	}
	return nil
}

// Identifier checks a table name: "table" or "schema.table", each part
// starting with a letter or underscore and made of ASCII letters, digits and
// underscores, at most MaxIdentifierLength characters. Validated identifiers
// are safe to place in SQL; nothing else ever is.
func Identifier(name string) error {
	if name == "" {
		return Invalidf("identifier is empty; use letters, digits and underscores, optionally schema-qualified (schema.table)")
	}
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return Invalidf("identifier %q has %d dot-separated parts; use table or schema.table", name, len(parts))
	}
	for _, p := range parts {
		if err := identifierPart(p); err != nil {
			return fmt.Errorf("identifier %q: %w", name, err)
		}
	}
	return nil
}

func identifierPart(p string) error {
	if p == "" {
		return Invalidf("empty part; use table or schema.table")
	}
	if len(p) > MaxIdentifierLength {
		return Invalidf("part %q is %d characters; the limit is %d", p, len(p), MaxIdentifierLength)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return Invalidf("character %q at position %d of %q is not allowed; use ASCII letters, digits (not first) and underscores", c, i, p)
		}
	}
	return nil
}

// Event validates ev and fills its defaults in place: a UUIDv7 ID and
// OccurredAt = now when they are empty.
func Event(ev *ports.Event, now time.Time) error {
	if ev.Name == "" {
		return Invalidf("event has an empty Name; give every event a name such as \"order.placed\"")
	}
	if len(ev.Payload) == 0 {
		return Invalidf("event %q has no payload; use a JSON value (at least {} or null)", ev.Name)
	}
	if !json.Valid(ev.Payload) {
		return Invalidf("event %q payload is not valid JSON", ev.Name)
	}
	if ev.ID == "" {
		ev.ID = NewID()
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = now
	}
	return nil
}

// NewID returns a new UUIDv7 in canonical text form; IDs from one process
// are strictly increasing (see core.NewID).
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}
