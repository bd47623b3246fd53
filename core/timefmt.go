package core

import (
	"fmt"
	"time"
)

// TimeFormat is the storage format of every wharf timestamp: ISO-8601, UTC,
// fixed width (27 characters, microseconds), so that the lexicographic order
// of stored strings is their chronological order in every dialect.
const TimeFormat = "2006-01-02T15:04:05.000000Z"

// FormatTime renders t in TimeFormat (UTC, truncated to microseconds).
func FormatTime(t time.Time) string {
	return t.UTC().Format(TimeFormat)
}

// ParseTime parses a TimeFormat string. It rejects anything else (other
// widths, offsets) so a corrupted or foreign value is noticed.
func ParseTime(s string) (time.Time, error) {
	if len(s) != len(TimeFormat) {
		return time.Time{}, fmt.Errorf("core: parse time %q: want fixed-width %s: %w", s, TimeFormat, errInvalid)
	}
	t, err := time.Parse(TimeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("core: parse time %q: %w", s, err)
	}
	return t, nil
}

// Clock returns the current time; a nil Clock means time.Now.
type Clock func() time.Time

// Now calls c, or time.Now when c is nil, and truncates to the stored
// precision (microseconds) in UTC.
func (c Clock) Now() time.Time {
	if c == nil {
		return time.Now().UTC().Truncate(time.Microsecond)
	}
	return c().UTC().Truncate(time.Microsecond)
}
