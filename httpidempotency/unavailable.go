package httpidempotency

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"syscall"

	"github.com/wharf-go/wharf/ports"
)

// IsUnavailable is the default Options.Unavailable: it reports whether err
// is transient — an error the store classed as retryable
// (ports.ErrRetryable: busy, deadlock, serialization failure,
// ports.ErrUnavailable) or a failure
// to reach the database (a network error such as a refused connection, a
// broken connection: driver.ErrBadConn, sql.ErrConnDone). Such an error is
// answered 503 with Retry-After; any other is a 500.
func IsUnavailable(err error) bool {
	var netErr net.Error
	return errors.Is(err, ports.ErrRetryable) ||
		errors.As(err, &netErr) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, sql.ErrConnDone)
}
