// Package querylog is the bun query hook behind wharf.Options.QueryLog:
// every statement logged through slog with its duration, rows, parameter
// count, the wharf component that ran it and the dialect, its error
// classified — and its parameter values redacted unless asked for.
package querylog

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/ports"
)

// Config configures a Hook.
type Config struct {
	// Logger receives the records; never nil.
	Logger *slog.Logger
	// Dialect names the database.
	Dialect string
	// Level is the level of an ordinary statement's record.
	Level slog.Level
	// Slow, when positive, logs statements that took at least this long at
	// warn level.
	Slow time.Duration
	// ShowParameters logs statements with their values.
	ShowParameters bool
	// Translate classifies a driver error (the dialect's).
	Translate func(error) error
}

// Hook is a bun.QueryHook that logs every statement of a pool.
type Hook struct{ cfg Config }

// New returns a hook.
func New(cfg Config) *Hook { return &Hook{cfg: cfg} }

var _ bun.QueryHook = (*Hook)(nil)

type portKey struct{}

// WithPort marks ctx as running statements for a wharf component and
// operation ("outbox.claim"), which the hook logs as port.
func WithPort(ctx context.Context, port string) context.Context {
	return context.WithValue(ctx, portKey{}, port)
}

// BeforeQuery implements bun.QueryHook.
func (h *Hook) BeforeQuery(ctx context.Context, _ *bun.QueryEvent) context.Context { return ctx }

// AfterQuery implements bun.QueryHook.
func (h *Hook) AfterQuery(ctx context.Context, e *bun.QueryEvent) {
	took := time.Since(e.StartTime)
	level := h.cfg.Level
	failed := e.Err != nil && !errors.Is(e.Err, sql.ErrNoRows)
	if failed || h.cfg.Slow > 0 && took >= h.cfg.Slow {
		level = max(level, slog.LevelWarn)
	}
	if !h.cfg.Logger.Enabled(ctx, level) {
		return
	}
	port, _ := ctx.Value(portKey{}).(string)
	if port == "" {
		port = "application"
	}
	attrs := []slog.Attr{
		slog.String("sql", h.text(e)),
		slog.Duration("duration", took),
		slog.Int("params", len(e.QueryArgs)),
		slog.String("port", port),
		slog.String("dialect", h.cfg.Dialect),
	}
	if e.Result != nil && !failed {
		if n, err := e.Result.RowsAffected(); err == nil {
			attrs = append(attrs, slog.Int64("rows", n))
		}
	}
	msg := "wharf: query"
	if failed {
		attrs = append(attrs, slog.String("error_class", Classify(h.cfg.Translate(e.Err))), slog.String("error", h.errText(e)))
		msg = "wharf: query failed"
	} else if level >= slog.LevelWarn {
		msg = "wharf: slow query"
	}
	h.cfg.Logger.LogAttrs(ctx, level, msg, attrs...)
}

// text is the statement as logged: with every literal redacted (bun's
// template is not enough: for a query builder it is the formatted
// statement, values included), or as run with ShowParameters.
func (h *Hook) text(e *bun.QueryEvent) string {
	if h.cfg.ShowParameters {
		return e.Query
	}
	return Redact(h.cfg.Dialect, e.Query)
}

// errText is the error's text, with the statement's literals redacted when
// the driver repeated them (some drivers quote the failing value).
func (h *Hook) errText(e *bun.QueryEvent) string {
	s := e.Err.Error()
	if h.cfg.ShowParameters {
		return s
	}
	return Redact(h.cfg.Dialect, s)
}

// Classify names an error's class for logs: "retryable" (serialization
// failure, deadlock, busy), "conflict" (unique violation), "lock" (lock not
// available), "canceled", "timeout", or "error".
func Classify(err error) string {
	switch {
	case errors.Is(err, ports.ErrRetryable):
		return "retryable"
	case errors.Is(err, ports.ErrUniqueViolation):
		return "conflict"
	case errors.Is(err, ports.ErrLockNotAvailable):
		return "lock"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "error"
}

// Redact replaces every literal of a SQL text in dialect ("postgres",
// "mysql" or "sqlite") with "?": quoted strings, numbers and blob literals,
// read with that dialect's quoting rules so that a value cannot end its
// string early and show the next ones. A backslash escapes only in MySQL's
// strings (wharf refuses NO_BACKSLASH_ESCAPES) and PostgreSQL's E” strings;
// MySQL's double-quoted text is a string; PostgreSQL's dollar-quoted strings
// are literals too. Identifiers and keywords are kept.
func Redact(dialect, s string) string {
	mysql, postgres := dialect == "mysql", dialect == "postgres"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\'':
			i = skipString(s, i, '\'', mysql)
			b.WriteByte('?')
		case c == '"' && mysql:
			i = skipString(s, i, '"', true)
			b.WriteByte('?')
		case (c == 'E' || c == 'e') && postgres && i+1 < len(s) && s[i+1] == '\'' && !identChar(prev(s, i)):
			i = skipString(s, i+1, '\'', true)
			b.WriteByte('?')
		case (c == 'X' || c == 'x' || c == 'B' || c == 'b') && i+1 < len(s) && s[i+1] == '\'' && !identChar(prev(s, i)):
			i = skipString(s, i+1, '\'', false)
			b.WriteByte('?')
		case c == '$' && postgres && !identChar(prev(s, i)) && dollarTag(s, i) != "":
			tag := dollarTag(s, i)
			j := strings.Index(s[i+len(tag):], tag)
			if j < 0 {
				return b.String() + "?" // unterminated: redact to the end
			}
			i += len(tag) + j + len(tag)
			b.WriteByte('?')
		case c == '"' || c == '`':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			b.WriteString(s[i : i+j+2])
			i += j + 2
		case c >= '0' && c <= '9' && !identChar(prev(s, i)):
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
				(s[j] == '-' || s[j] == '+') && (s[j-1] == 'e' || s[j-1] == 'E')) {
				j++
			}
			b.WriteByte('?')
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// skipString returns the index after the string that starts with the quote
// q at i; a doubled quote stands for itself, and with backslash a backslash
// escapes the next byte.
func skipString(s string, i int, q byte, backslash bool) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if backslash {
				j++
			}
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// dollarTag returns the PostgreSQL dollar-quote opening at i ("$$" or
// "$tag$"), or "" when s[i:] does not open one ($1 is a parameter).
func dollarTag(s string, i int) string {
	for j := i + 1; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '$':
			return s[i : j+1]
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80:
		case c >= '0' && c <= '9' && j > i+1:
		default:
			return ""
		}
	}
	return ""
}

func prev(s string, i int) byte {
	if i == 0 {
		return ' '
	}
	return s[i-1]
}

func identChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
