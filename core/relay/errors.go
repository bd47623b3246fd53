package relay

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// ErrNoHandler is matched by the error a relay records for a message whose
// topic has no handler (see Options.UnknownTopic). The stored last error
// names the topic.
var ErrNoHandler = errors.New("no handler for topic")

// PermanentError marks a handler error that retrying cannot fix: the relay
// dead-letters the message at once, whatever attempts remain. Create it with
// Permanent and detect it with IsPermanent (or errors.As). Its text is the
// wrapped error's text.
type PermanentError struct {
	Err error
}

// Error returns the wrapped error's text ("permanent error" when Err is
// nil).
func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "permanent error"
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent: a relay dead-letters the message at once
// with err's text as its last error. Permanent(nil) is nil (a handler that
// returns it succeeded).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err (or an error it wraps) was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// RetryAfterError asks the relay to retry the message after Delay instead of
// after the backoff policy's delay. Create it with RetryAfter and detect it
// with RetryAfterDelay (or errors.As). Its text is the wrapped error's text.
type RetryAfterError struct {
	Err   error
	Delay time.Duration
}

// Error returns the wrapped error's text ("retry after <Delay>" when Err
// is nil).
func (e *RetryAfterError) Error() string {
	if e.Err == nil {
		return "retry after " + e.Delay.String()
	}
	return e.Err.Error()
}

// Unwrap returns the wrapped error.
func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter asks for the next attempt after d (for example a rate limit's
// Retry-After). The attempt still counts: on the message's final attempt it
// is dead-lettered as for any error, and Permanent takes precedence when both
// wrap one error. A negative d counts as zero (claimable at once).
// RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	if d < 0 {
		d = 0
	}
	return &RetryAfterError{Err: err, Delay: d}
}

// RetryAfterDelay returns the delay requested with RetryAfter, if err (or an
// error it wraps) carries one; the outermost request wins.
func RetryAfterDelay(err error) (time.Duration, bool) {
	var r *RetryAfterError
	if errors.As(err, &r) {
		return r.Delay, true
	}
	return 0, false
}

// PanicError is the error a relay records when a handler panics: the message
// is retried like after any error (the panic does not crash the relay). The
// stack is logged; only the short Error text is stored as the last error.
type PanicError struct {
	// Value is the value passed to panic.
	Value any
	// Stack is the panicking goroutine's stack trace.
	Stack []byte
}

// Error returns "panic: " and the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// maxLastError bounds the last error stored with a retried or dead message,
// in bytes.
const maxLastError = 2000

// lastErrorText is err's text as stored in the outbox: never empty, at most
// maxLastError bytes, cut on a rune boundary.
func lastErrorText(err error) string {
	s := err.Error()
	if s == "" {
		s = fmt.Sprintf("handler error %T with an empty message", err)
	}
	if len(s) <= maxLastError {
		return s
	}
	const ellipsis = " […]"
	cut := maxLastError - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}
