package sqlite

import (
	"errors"

	"modernc.org/sqlite"

	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
)

// SQLite result codes (https://www.sqlite.org/rescode.html).
const (
	codeBusy             = 5
	codeLocked           = 6
	codeConstraint       = 19
	codeConstraintPK     = 1555
	codeConstraintUnique = 2067
)

// TranslateError classifies a driver error: SQLITE_BUSY and SQLITE_LOCKED
// (any extended code) become retryable ports.ErrBusy; unique and primary-key
// constraint violations become ports.ErrUniqueViolation. Other errors, and
// errors already classified, are returned unchanged.
func TranslateError(err error) error {
	if err == nil {
		return nil
	}
	var classified *sqlbase.DBError
	if errors.As(err, &classified) {
		return err
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	code := se.Code()
	switch {
	case code&0xff == codeBusy, code&0xff == codeLocked:
		return &sqlbase.DBError{Kind: ports.ErrBusy, Retryable: true, Err: err}
	case code == codeConstraintUnique, code == codeConstraintPK:
		return &sqlbase.DBError{Kind: ports.ErrUniqueViolation, Err: err}
	}
	return err
}
