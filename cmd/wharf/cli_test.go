package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRedactHidesThePasswordInEverySpelling(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, url, in, want string
	}{
		{"LongPasswordEverywhere", "postgres://app:S3cret!pass@db/x", "auth failed: S3cret!pass; url postgres://app:S3cret%21pass@db",
			"auth failed: xxxxx; url postgres://app:xxxxx@db"},
		{"ShortPasswordAfterItsUser", "postgres://wharf:wharf@db/x", "dial postgres://wharf:wharf@db: refused; run wharf migrate up",
			"dial postgres://wharf:xxxxx@db: refused; run wharf migrate up"},
		{"MySQLDSNForm", "mysql://app:pw1@db/x", "Error 1045: app:pw1@tcp(db:3306)/x", "Error 1045: app:xxxxx@tcp(db:3306)/x"},
		{"URLThatDoesNotParse", "postgres://app:S3cret pass@db:bad/x", "bad URL postgres://app:S3cret pass@db:bad/x", "bad URL postgres://app:xxxxx@db:bad/x"},
		{"NoPassword", "postgres://app@db/x", "postgres://app@db/x", "postgres://app@db/x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &cli{url: tc.url}
			require.Equal(t, tc.want, c.redact(tc.in))
		})
	}
}

func TestParseAgeReadsAgesAndTimes(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 15, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"72h", now.Add(-72 * time.Hour)},
		{"14d", now.Add(-14 * 24 * time.Hour)},
		{"90m", now.Add(-90 * time.Minute)},
		{"0s", now},
		{"2030-01-01T00:00:00Z", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := parseAge("--older-than", tc.in, now)
		require.NoError(t, err, tc.in)
		require.True(t, tc.want.Equal(got), "%s: %v", tc.in, got)
	}
	for _, bad := range []string{"", "-1h", "soon", "14days"} {
		_, err := parseAge("--older-than", bad, now)
		require.Error(t, err, bad)
		require.Contains(t, err.Error(), "--older-than")
	}
}
