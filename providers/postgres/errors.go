package postgres

import (
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
)

// TranslateError classifies a driver error by its SQLSTATE: 40001
// (serialization failure) becomes retryable ports.ErrSerialization, 40P01
// retryable ports.ErrDeadlock, 55P03 (NOWAIT lock not available)
// ports.ErrLockNotAvailable and 23505 ports.ErrUniqueViolation. Other errors,
// and errors already classified, are returned unchanged. The result still
// matches the *pgconn.PgError.
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
		return err
	}
	switch pe.Code {
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
