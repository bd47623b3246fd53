package httpidempotency_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/httpidempotency"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/postgres"
)

// failingStore is a store whose Reserve fails with err.
type failingStore struct {
	ports.Idempotency
	err error
}

func (s failingStore) Reserve(context.Context, ports.ReserveRequest) (ports.Reservation, error) {
	return ports.Reservation{}, s.err
}

// closedPortAddr returns a loopback address nothing listens on.
func closedPortAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// unreachableStore is the idempotency store of a real PostgreSQL driver
// whose server does not answer: its port is closed. (NewDriver does not
// connect; the store's first statement dials and is refused.)
func unreachableStore(t *testing.T) ports.Idempotency {
	t.Helper()
	cfg, err := postgres.ParseURL("postgres://wharf:secret@" + closedPortAddr(t) + "/wharf?sslmode=disable")
	require.NoError(t, err)
	db := bun.NewDB(stdlib.OpenDB(*cfg), pgdialect.New())
	t.Cleanup(func() { _ = db.Close() })
	drv, err := wharf.NewDriver(db, wharf.Options{})
	require.NoError(t, err)
	return drv.Idempotency()
}

func TestMiddlewareStoreFailures(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		name        string
		store       func(t *testing.T) ports.Idempotency
		unavailable func(ctx context.Context, err error) bool
		wantStatus  int
		wantCode    string
	}{
		{name: "RetryableConflictIsUnavailable", wantStatus: 503, wantCode: httpidempotency.CodeUnavailable,
			store: fail(fmt.Errorf("reserve: %w: %w", ports.ErrBusy, ports.ErrRetryable))},
		{name: "RefusedConnectionIsUnavailable", wantStatus: 503, wantCode: httpidempotency.CodeUnavailable,
			store: fail(fmt.Errorf("reserve: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}))},
		{name: "BadConnectionIsUnavailable", wantStatus: 503, wantCode: httpidempotency.CodeUnavailable,
			store: fail(fmt.Errorf("reserve: %w", driver.ErrBadConn))},
		{name: "ClosedConnectionIsUnavailable", wantStatus: 503, wantCode: httpidempotency.CodeUnavailable,
			store: fail(fmt.Errorf("reserve: %w", sql.ErrConnDone))},
		{name: "RealServerOnAClosedPortIsUnavailable", wantStatus: 503, wantCode: httpidempotency.CodeUnavailable,
			store: unreachableStore},
		{name: "OtherErrorsAreInternal", wantStatus: 500, wantCode: httpidempotency.CodeInternal,
			store: fail(boom)},
		{name: "OptionsUnavailableClassifies", wantStatus: 503, wantCode: httpidempotency.CodeUnavailable,
			store:       fail(boom),
			unavailable: func(_ context.Context, err error) bool { return errors.Is(err, boom) }},
		{name: "OptionsUnavailableReplacesTheDefault", wantStatus: 500, wantCode: httpidempotency.CodeInternal,
			store:       fail(fmt.Errorf("reserve: %w", driver.ErrBadConn)),
			unavailable: func(context.Context, error) bool { return false }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := httpidempotency.New(httpidempotency.Options{Store: tt.store(t), Unavailable: tt.unavailable})
			require.NoError(t, err)
			ran := false
			h := m.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true }))
			rq := request{keys: []string{"k"}, body: "x", wantStatus: tt.wantStatus, wantCode: tt.wantCode}
			w := rq.do(t, h)
			rq.check(t, 0, w)
			require.False(t, ran, "the handler does not run without a reservation")
			if tt.wantStatus == 503 {
				require.Equal(t, "1", w.Header().Get("Retry-After"))
			} else {
				require.Empty(t, w.Header().Get("Retry-After"))
			}
		})
	}
}

func fail(err error) func(*testing.T) ports.Idempotency {
	return func(*testing.T) ports.Idempotency { return failingStore{err: err} }
}

func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	store := unreachableStore(t)
	_, refused := store.Reserve(t.Context(), ports.ReserveRequest{
		IdempotencyKey: ports.IdempotencyKey{Namespace: "n", Key: "k"}, Fingerprint: "f"})
	require.Error(t, refused)
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "Nil", err: nil, want: false},
		{name: "Retryable", err: fmt.Errorf("x: %w", ports.ErrRetryable), want: true},
		{name: "RealRefusedConnection", err: refused, want: true},
		{name: "ConnectionReset", err: fmt.Errorf("read: %w", syscall.ECONNRESET), want: true},
		{name: "UniqueViolationIsNot", err: fmt.Errorf("x: %w", ports.ErrUniqueViolation), want: false},
		{name: "InvalidArgumentIsNot", err: fmt.Errorf("x: %w", ports.ErrInvalidArgument), want: false},
		{name: "NoRowsIsNot", err: sql.ErrNoRows, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, httpidempotency.IsUnavailable(tt.err), "%v", tt.err)
		})
	}
}
