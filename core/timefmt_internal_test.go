package core

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestParseTimeAgreesWithTimeParse: for many formatted times and for
// malformed strings, ParseTime returns exactly what the time.Parse path
// returns.
func TestParseTimeAgreesWithTimeParse(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var inputs []string
	for range 200000 {
		// Years 0000-9999, any instant, microsecond precision.
		sec := r.Int64N(253402300800) - 62167219200
		inputs = append(inputs, FormatTime(time.Unix(sec, r.Int64N(1e9))))
	}
	inputs = append(inputs, FormatTime(time.Now()),
		"2024-02-29T23:59:59.999999Z", "2023-02-29T00:00:00.000000Z", "2024-02-30T00:00:00.000000Z",
		"2024-04-31T00:00:00.000000Z", "2024-13-01T00:00:00.000000Z", "2024-00-01T00:00:00.000000Z",
		"2024-01-00T00:00:00.000000Z", "2024-01-01T24:00:00.000000Z", "2024-01-01T00:60:00.000000Z",
		"2024-01-01T00:00:60.000000Z", "2024-01-01T00:00:00.00000aZ", "2024-01-01 00:00:00.000000Z",
		"2024-01-01T00:00:00.000000+", "+024-01-01T00:00:00.000000Z", "2024-01-01T00:00:00.000000",
		"2024-01-01T00:00:00.0000000Z", "", "0000-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z",
		"2024-1-01T00:00:00.0000000Z", "2024-01-01T0:00:00.0000000Z", "2024-01-01T00:00:00,000000Z")
	// Corrupt formatted values one byte at a time.
	base := "2024-06-15T12:34:56.789012Z"
	for i := range len(base) {
		for _, c := range []byte("09-:.TZ /a\x00\xff") {
			b := []byte(base)
			b[i] = c
			inputs = append(inputs, string(b))
		}
	}
	for _, s := range inputs {
		want, wantErr := parseTimeSlow(s)
		got, gotErr := ParseTime(s)
		if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Error() != gotErr.Error()) {
			t.Fatalf("%q: error %v, time.Parse path %v", s, gotErr, wantErr)
		}
		if !got.Equal(want) || got.Location() != want.Location() || got != want {
			t.Fatalf("%q: got %v, time.Parse path %v", s, got, want)
		}
	}
}

func BenchmarkParseTime(b *testing.B) {
	s := FormatTime(time.Now())
	b.Run("TimeParse", func(b *testing.B) {
		for range b.N {
			_, _ = parseTimeSlow(s)
		}
	})
	b.Run("ParseTime", func(b *testing.B) {
		for range b.N {
			_, _ = ParseTime(s)
		}
	})
}
