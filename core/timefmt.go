package core

import (
	"fmt"
	"time"

	"github.com/wharf-go/wharf/ports"
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
//
// Well-formed values are parsed by hand, since the claim path parses
// several per row; anything else takes time.Parse, for the same result or
// the same error.
func ParseTime(s string) (time.Time, error) {
	if t, ok := parseTimeFast(s); ok {
		return t, nil
	}
	return parseTimeSlow(s)
}

// parseTimeFast parses s when it is a valid time in exactly TimeFormat's
// shape; ok is false for anything else.
func parseTimeFast(s string) (t time.Time, ok bool) {
	if len(s) != len(TimeFormat) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
		s[16] != ':' || s[19] != '.' || s[26] != 'Z' {
		return time.Time{}, false
	}
	year, ok1 := digits(s, 0, 4)
	month, ok2 := digits(s, 5, 7)
	day, ok3 := digits(s, 8, 10)
	hour, ok4 := digits(s, 11, 13)
	minute, ok5 := digits(s, 14, 16)
	sec, ok6 := digits(s, 17, 19)
	micro, ok7 := digits(s, 20, 26)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) ||
		month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	t = time.Date(year, time.Month(month), day, hour, minute, sec, micro*1000, time.UTC)
	if t.Day() != day { // e.g. February 30: time.Date normalised it
		return time.Time{}, false
	}
	return t, true
}

// digits returns the decimal number s[from:to] and whether it is all digits.
func digits(s string, from, to int) (int, bool) {
	n := 0
	for i := from; i < to; i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		n = n*10 + int(c)
	}
	return n, true
}

// parseTimeSlow is ParseTime through time.Parse.
func parseTimeSlow(s string) (time.Time, error) {
	if len(s) != len(TimeFormat) {
		return time.Time{}, fmt.Errorf("core: parse time %q: want fixed-width %s: %w", s, TimeFormat, ports.ErrInvalidArgument)
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
