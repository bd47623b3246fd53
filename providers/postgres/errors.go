package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
)

// PostgreSQL SQLSTATE codes
// (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const (
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeLockNotAvailable     = "55P03"
	codeUniqueViolation      = "23505"
	codeTooManyConnections   = "53300"
	codeCannotConnectNow     = "57P03" // the server is starting up or shutting down
)

// TranslateError classifies a driver error by its SQLSTATE: 40001
// (serialization failure) becomes retryable ports.ErrSerialization, 40P01
// retryable ports.ErrDeadlock, 55P03 (NOWAIT lock not available)
// ports.ErrLockNotAvailable and 23505 ports.ErrUniqueViolation. 53300 (too
// many connections), 57P03 (cannot connect now), a failed connection
// (*pgconn.ConnectError, a refused dial) and errors pgx marks safe to retry
// because nothing was sent become retryable ports.ErrUnavailable. Other
// errors, and errors already classified, are returned unchanged. The result
// still matches the driver's error.
func TranslateError(err error) error {
	if err == nil {
		return nil
	}
	var classified *sqlbase.DBError
	if errors.As(err, &classified) {
		return err
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		if unreachable(err) {
			return &sqlbase.DBError{Kind: ports.ErrUnavailable, Retryable: true, Err: err}
		}
		return err
	}
	switch pe.Code {
	case codeTooManyConnections, codeCannotConnectNow:
		return &sqlbase.DBError{Kind: ports.ErrUnavailable, Retryable: true, Err: err}
	case codeSerializationFailure:
		return &sqlbase.DBError{Kind: ports.ErrSerialization, Retryable: true, Err: err}
	case codeDeadlockDetected:
		return &sqlbase.DBError{Kind: ports.ErrDeadlock, Retryable: true, Err: err}
	case codeLockNotAvailable:
		return &sqlbase.DBError{Kind: ports.ErrLockNotAvailable, Err: err}
	case codeUniqueViolation:
		return &sqlbase.DBError{Kind: ports.ErrUniqueViolation, Err: err}
	}
	return err
}

// unreachable reports whether err is a failure to reach the server before
// anything was sent.
func unreachable(err error) bool {
	if sqlbase.Unreachable(err) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || pgconn.SafeToRetry(err)
}
