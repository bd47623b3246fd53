package mysql

import (
	"errors"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
)

// MySQL and MariaDB server error numbers that TranslateError classifies
// (https://dev.mysql.com/doc/mysql-errors/8.0/en/server-error-reference.html).
const (
	erConCount            = 1040 // ER_CON_COUNT_ERROR: too many connections
	erDupEntry            = 1062 // ER_DUP_ENTRY
	erTooManyUserConns    = 1203 // ER_TOO_MANY_USER_CONNECTIONS
	erLockWaitTimeout     = 1205 // ER_LOCK_WAIT_TIMEOUT (also MariaDB's NOWAIT failure)
	erLockDeadlock        = 1213 // ER_LOCK_DEADLOCK
	erDupEntryWithKeyName = 1586 // ER_DUP_ENTRY_WITH_KEY_NAME
	erLockNowait          = 3572 // ER_LOCK_NOWAIT (MySQL 8 NOWAIT)
)

// TranslateError classifies a driver error (*mysql.MySQLError):
//
//   - 1213 deadlock: retryable ports.ErrDeadlock. InnoDB has rolled the whole
//     transaction back.
//   - 1205 lock wait timeout (and MariaDB's NOWAIT failure): retryable
//     ports.ErrBusy. Only the statement was rolled back and the transaction
//     is still open (unless innodb_rollback_on_timeout is set); a unit of
//     work always rolls it back before running fn again.
//   - 1040 and 1203 too many connections: retryable ports.ErrUnavailable.
//     They happen while connecting, before any statement ran.
//   - A failed connection (a refused dial) or driver.ErrBadConn, which the
//     driver returns only when nothing was sent: retryable
//     ports.ErrUnavailable. A connection that broke after a statement was
//     sent (mysql.ErrInvalidConn) is not classified: whether the statement
//     took effect is unknown.
//   - 1062 and 1586 duplicate entry: ports.ErrUniqueViolation.
//   - 3572 NOWAIT lock not available (MySQL 8): ports.ErrLockNotAvailable.
//
// Other errors, and errors already classified, are returned unchanged.
func TranslateError(err error) error {
	if err == nil {
		return nil
	}
	var classified *sqlbase.DBError
	if errors.As(err, &classified) {
		return err
	}
	var me *gomysql.MySQLError
	if !errors.As(err, &me) {
		if sqlbase.Unreachable(err) {
			return &sqlbase.DBError{Kind: ports.ErrUnavailable, Retryable: true, Err: err}
		}
		return err
	}
	switch me.Number {
	case erLockDeadlock:
		return &sqlbase.DBError{Kind: ports.ErrDeadlock, Retryable: true, Err: err}
	case erLockWaitTimeout:
		return &sqlbase.DBError{Kind: ports.ErrBusy, Retryable: true, Err: err}
	case erConCount, erTooManyUserConns:
		return &sqlbase.DBError{Kind: ports.ErrUnavailable, Retryable: true, Err: err}
	case erDupEntry, erDupEntryWithKeyName:
		return &sqlbase.DBError{Kind: ports.ErrUniqueViolation, Err: err}
	case erLockNowait:
		return &sqlbase.DBError{Kind: ports.ErrLockNotAvailable, Err: err}
	}
	return err
}
