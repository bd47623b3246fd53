package outboxsql

import (
	"time"

	"github.com/wharf-go/wharf/core"
)

// parseTime parses core.TimeFormat ("2006-01-02T15:04:05.000000Z", fixed
// width, UTC) by hand: the claim path parses three timestamps per row, and
// time.Parse costs several times more. Anything that is not a well-formed
// value of that exact shape goes to core.ParseTime, which returns the same
// result or the same error as before.
func parseTime(s string) (time.Time, error) {
	if len(s) != len(core.TimeFormat) || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
		s[16] != ':' || s[19] != '.' || s[26] != 'Z' {
		return core.ParseTime(s)
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
		return core.ParseTime(s)
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, micro*1000, time.UTC)
	if t.Day() != day { // e.g. February 30: time.Date normalised it
		return core.ParseTime(s)
	}
	return t, nil
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
