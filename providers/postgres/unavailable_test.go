package postgres_test

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/internal/testdb"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/postgres"
)

func TestTranslateErrorOfConnectionFailures(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name        string
		err         error
		unavailable bool
	}{
		{"RefusedDial", fmt.Errorf("connect: %w", refused), true},
		{"BadConnection", fmt.Errorf("begin: %w", driver.ErrBadConn), true},
		{"BrokenReadIsUnchanged", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, false},
		{"CanceledContextIsUnchanged", fmt.Errorf("dial: %w", errors.Join(context.Canceled, refused)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := postgres.TranslateError(tt.err)
			if !tt.unavailable {
				require.Same(t, tt.err, got, "returned unchanged")
				require.NotErrorIs(t, got, ports.ErrRetryable)
				return
			}
			require.ErrorIs(t, got, ports.ErrUnavailable)
			require.ErrorIs(t, got, ports.ErrRetryable)
			require.ErrorIs(t, got, tt.err, "the driver error stays reachable")
		})
	}
}

// TestUnreachableServer runs against a port nothing listens on: the refused
// connection is retryable ports.ErrUnavailable, so a unit of work runs its
// attempts and an HTTP layer can answer 503.
func TestUnreachableServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := "postgres://app:" + secret + "@" + testdb.ClosedAddr(t) + "/app?sslmode=disable&connect_timeout=5"

	t.Run("OpenReportsUnavailable", func(t *testing.T) {
		t.Parallel()
		_, err := postgres.Open(ctx, url, wharf.Options{})
		require.ErrorIs(t, err, ports.ErrUnavailable)
		require.ErrorIs(t, err, ports.ErrRetryable)
		require.NotContains(t, err.Error(), secret)
	})
	t.Run("TransactionRetriesThenReportsUnavailable", func(t *testing.T) {
		t.Parallel()
		cfg, err := postgres.ParseURL(url)
		require.NoError(t, err)
		db := bun.NewDB(stdlib.OpenDB(*cfg), pgdialect.New())
		t.Cleanup(func() { _ = db.Close() })
		drv, err := wharf.NewDriver(db, wharf.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = drv.Close() })
		uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (wharf.Tx, error) { return tx, nil },
			wharf.UnitOfWorkOptions{MaxAttempts: 3, RetryDelay: time.Millisecond})
		require.NoError(t, err)
		calls := 0
		err = uow.Transaction(ctx, func(context.Context, wharf.Tx) error { calls++; return nil })
		require.ErrorIs(t, err, ports.ErrUnavailable)
		require.ErrorContains(t, err, "after 3 attempts")
		require.Zero(t, calls, "fn never ran: no transaction began")
	})
}
