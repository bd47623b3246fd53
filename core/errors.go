package core

import (
	"fmt"

	"github.com/wharf-go/wharf/ports"
)

var errInvalid = ports.ErrInvalidArgument

// Invalidf returns an error matching ports.ErrInvalidArgument whose text is
// the formatted message.
func Invalidf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ports.ErrInvalidArgument)
}

// DBError is a database error classified by a provider's error translation.
// It matches its Kind (a ports sentinel such as ports.ErrDeadlock),
// ports.ErrRetryable when Retryable is set, and the driver's error.
type DBError struct {
	Kind      error
	Retryable bool
	Err       error
}

// Error implements error.
func (e *DBError) Error() string {
	if e.Retryable {
		return fmt.Sprintf("%v (retryable): %v", e.Kind, e.Err)
	}
	return fmt.Sprintf("%v: %v", e.Kind, e.Err)
}

// Unwrap exposes the kind, ports.ErrRetryable when retryable, and the cause.
func (e *DBError) Unwrap() []error {
	if e.Retryable {
		return []error{e.Kind, ports.ErrRetryable, e.Err}
	}
	return []error{e.Kind, e.Err}
}
