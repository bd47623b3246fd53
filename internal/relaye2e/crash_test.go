package relaye2e

import (
	"context"
	"errors"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

// TestKilledWorkerMessagesAreRedelivered kills a relay process with SIGKILL
// while four of its handlers are blocked, then runs a fresh relay process
// whose clock is past the lease: every message is delivered, nothing is
// lost, and the interrupted ones count their interrupted attempt.
func TestKilledWorkerMessagesAreRedelivered(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			const blocked, work = 4, 40
			url := d.newDB(t)
			ob := openDriver(t, d, url, wharf.Options{}).Outbox()
			msgs := make([]ports.OutboxMessage, 0, blocked+work)
			for range blocked {
				msgs = append(msgs, ports.OutboxMessage{Kind: ports.KindJob, Topic: topicBlock, Payload: []byte(`{}`)})
			}
			for range work {
				msgs = append(msgs, ports.OutboxMessage{Kind: ports.KindJob, Topic: topicWork, Payload: []byte(`{}`)})
			}
			ids, err := ob.Enqueue(context.Background(), msgs...)
			require.NoError(t, err)

			worker := startChild(t, "worker", "crash", d, url, nil)
			var interrupted []string
			for _, f := range worker.await(t, lineBlocked, blocked) {
				require.Equal(t, "1", f[1], "first attempt")
				interrupted = append(interrupted, f[0])
			}
			require.ElementsMatch(t, ids[:blocked], interrupted, "the blocking messages are claimed first")
			// Let the two free slots work through some messages, so the kill
			// finds completed ones, handled ones whose completion is not yet
			// written, and the blocked ones.
			worker.await(t, lineDelivered, 10)

			require.NoError(t, worker.cmd.Process.Signal(syscall.SIGKILL))
			err = worker.wait(t)
			var exitErr *exec.ExitError
			require.True(t, errors.As(err, &exitErr), "the worker was killed: %v", err)
			ws, ok := exitErr.Sys().(syscall.WaitStatus)
			require.True(t, ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL, "killed by SIGKILL: %v", err)

			recs, err := ob.List(context.Background(), ports.OutboxFilter{Limit: 1000})
			require.NoError(t, err)
			leased := map[string]ports.OutboxRecord{}
			for _, r := range recs {
				if !r.LockedUntil.IsZero() && r.LockedUntil.After(time.Now()) {
					leased[r.ID] = r
				}
			}
			for _, id := range interrupted {
				r, ok := leased[id]
				require.True(t, ok, "message %s stays leased after the crash", id)
				require.Equal(t, 1, r.Attempts)
			}

			// A fresh relay process, cron style, whose clock is past the lease.
			recovery := startChild(t, "recovery", "drain", d, url, nil, envClockOffset+"="+(childLease+time.Second).String())
			require.NoError(t, recovery.wait(t), "recovery: %v\n%s", recovery.fields(lineError), recovery.stderr.String())
			res := recovery.result(t)
			require.Zero(t, res.Retried+res.DeadLettered+res.Abandoned+res.Released, "recovery: %+v", res)

			handled := map[string][]int{} // id -> attempts, both processes
			for _, c := range []*child{worker, recovery} {
				for _, f := range c.fields(lineDelivered) {
					h, err := parseHandled(f)
					require.NoError(t, err)
					handled[h.id] = append(handled[h.id], h.attempt)
				}
			}
			for _, id := range ids {
				require.NotEmpty(t, handled[id], "message %s was delivered", id)
			}
			for _, id := range interrupted {
				require.Equal(t, []int{2}, handled[id], "interrupted message %s is redelivered once, as attempt 2", id)
			}
			redelivered := 0
			for _, id := range ids[blocked:] {
				if len(handled[id]) > 1 {
					redelivered++
					require.Equal(t, []int{1, 2}, handled[id], "message %s: handled by the worker, its completion died with it", id)
				}
			}
			require.Equal(t, len(recovery.fields(lineDelivered)), res.Delivered, "the recovery completed every message it handled")
			require.Len(t, handled, len(ids), "exactly the enqueued messages were handled")
			remaining, err := ob.List(context.Background(), ports.OutboxFilter{Limit: 1000})
			require.NoError(t, err)
			require.Empty(t, remaining, "nothing is left in the outbox")
			t.Logf("%s: worker handled %d before SIGKILL (%d of them redelivered: completion not yet written), %d interrupted mid-handler; recovery delivered %d",
				d.name, len(worker.fields(lineDelivered)), redelivered, blocked, res.Delivered)
		})
	}
}
