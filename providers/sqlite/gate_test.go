package sqlite_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

type gatePorts struct {
	Outbox wharf.Outbox
	Idem   wharf.Idempotency
}

// gatePortsOf is the build function of the tests' units of work.
func gatePortsOf(tx wharf.Tx) (gatePorts, error) {
	return gatePorts{Outbox: tx.Outbox, Idem: tx.Idempotency}, nil
}

// openImpatient opens a database whose busy handler gives up after 1 ms:
// two writers that meet in SQLite fail with SQLITE_BUSY, so only writers
// that the provider queues in Go all succeed.
func openImpatient(t *testing.T) (*wharf.Driver, wharf.Outbox, wharf.Idempotency) {
	t.Helper()
	drv := openDriver(t, "file:"+filepath.Join(t.TempDir(), "gate.db")+"?_pragma=busy_timeout(1)", wharf.Options{})
	require.NoError(t, drv.Migrate(context.Background()))
	return drv, drv.Outbox(), drv.Idempotency()
}

// TestWriteGateQueuesProviderWriters: the outbox and the idempotency store
// on the root handle and the unit of work's transactions, all on one
// database, write concurrently without ever meeting in SQLite's busy
// handler (busy_timeout 1 ms, unit-of-work retries off).
func TestWriteGateQueuesProviderWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	drv, ob, idem := openImpatient(t)
	db := drv.DB()
	uow, err := wharf.NewUnitOfWork(drv, gatePortsOf, wharf.UnitOfWorkOptions{MaxAttempts: 1})
	require.NoError(t, err)

	const rounds = 60
	msg := func() ports.OutboxMessage { return ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`)} }
	var wg sync.WaitGroup
	errs := make(chan error, 16*rounds)
	run := func(f func(i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if err := f(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	for w := range 2 {
		run(func(i int) error { // a unit of work: reserve, enqueue two, complete
			return uow.Transaction(ctx, func(ctx context.Context, tx gatePorts) error {
				res, err := tx.Idem.Reserve(ctx, ports.ReserveRequest{
					IdempotencyKey: ports.IdempotencyKey{Namespace: "uow", Key: fmt.Sprintf("%d-%d", w, i)},
					Fingerprint:    "f",
				})
				if err != nil {
					return err
				}
				if _, err := tx.Outbox.Enqueue(ctx, msg(), msg()); err != nil {
					return err
				}
				return tx.Idem.Complete(ctx, res, json.RawMessage(`1`))
			})
		})
	}
	run(func(i int) error { // the outbox on the root handle: enqueue
		_, err := ob.Enqueue(ctx, msg())
		return err
	})
	for range 2 {
		run(func(i int) error { // the outbox on the root handle: claim and complete
			msgs, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 3, Lease: time.Minute})
			if err != nil {
				return err
			}
			cs := make([]ports.Claim, len(msgs))
			for j, m := range msgs {
				cs[j] = m.Claim()
			}
			return ob.Complete(ctx, cs...)
		})
	}
	run(func(i int) error { // the idempotency store on the root handle
		res, err := idem.Reserve(ctx, ports.ReserveRequest{
			IdempotencyKey: ports.IdempotencyKey{Namespace: "root", Key: fmt.Sprint(i)},
			Fingerprint:    "f",
		})
		if err != nil {
			return err
		}
		return idem.Fail(ctx, res)
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err, "a provider writer met another in SQLite's busy handler")
	}
	var left int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM idempotency_records WHERE namespace = 'uow' AND status = 'completed'").Scan(&left))
	require.Equal(t, 2*rounds, left)
}

// TestWriteGateInsideUnitOfWorkDoesNotDeadlock: inside a unit of work's
// transaction (which holds the gate), an operation on the root handle with
// the transaction's context does not queue behind its own transaction: it
// goes to SQLite, whose busy handler reports the conflict.
func TestWriteGateInsideUnitOfWorkDoesNotDeadlock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	drv, ob, idem := openImpatient(t)
	db := drv.DB()
	uow, err := wharf.NewUnitOfWork(drv, gatePortsOf, wharf.UnitOfWorkOptions{MaxAttempts: 1})
	require.NoError(t, err)
	var rootErr, idemErr error
	err = uow.Transaction(ctx, func(ctx context.Context, tx gatePorts) error {
		if _, err := tx.Outbox.Enqueue(ctx, ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`)}); err != nil {
			return err
		}
		_, rootErr = ob.Enqueue(ctx, ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`)})
		_, idemErr = idem.Reserve(ctx, ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "n", Key: "k"}, Fingerprint: "f"})
		return nil
	})
	require.NoError(t, err)
	require.ErrorIs(t, rootErr, ports.ErrBusy, "the root handle's write conflicts with the open transaction in SQLite")
	require.ErrorIs(t, idemErr, ports.ErrBusy)
	require.Equal(t, 1, countOutbox(t, db))
}

func countOutbox(t *testing.T, db bun.IDB) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM outbox_messages").Scan(&n))
	return n
}
