package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/wharf-go/wharf/ports"
)

// errInvalid marks the errors of bad input (a bad URL, table name or flag).
var errInvalid = ports.ErrInvalidArgument

func (c *cli) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
}

func (c *cli) writeJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%s\n", b)
	return err
}

// timeJSON renders t for --json: RFC 3339 in UTC with microseconds.
func timeJSON(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z07:00") }

// optTime is timeJSON, nil for the zero time.
func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := timeJSON(t)
	return &s
}

// human renders t for people, with how long ago or ahead it is.
func human(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	s := t.UTC().Format("2006-01-02 15:04:05Z")
	d := now.Sub(t).Round(time.Second)
	switch {
	case d > 0:
		return s + " (" + d.String() + " ago)"
	case d < 0:
		return s + " (in " + (-d).String() + ")"
	}
	return s + " (now)"
}

// cut shortens s to n characters for a table cell, on one line.
func cut(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// orDash is s, or "-" when empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// codeOf is the exit status of err: bad usage for invalid input.
func codeOf(err error) int {
	if errors.Is(err, errInvalid) {
		return exitUsage
	}
	return exitError
}
