package postgres_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/postgres"
)

// seedMessages enqueues n messages (in batches) and returns their IDs.
func seedMessages(t *testing.T, ob ports.Outbox, n int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	for len(ids) < n {
		batch := make([]ports.OutboxMessage, min(1000, n-len(ids)))
		for i := range batch {
			batch[i] = ports.OutboxMessage{Topic: "load", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, len(ids)+i))}
		}
		got, err := ob.Enqueue(context.Background(), batch...)
		require.NoError(t, err)
		ids = append(ids, got...)
	}
	return ids
}

// drain claims and completes batches with ob until a claim comes back
// empty, calling claimed before Complete and completed after it. All
// messages are enqueued before draining starts and no lease expires, so an
// empty claim means that what is left is held by other live claimers.
func drain(ctx context.Context, ob ports.Outbox, batch int, claimed, completed func([]ports.ClaimedMessage) error) error {
	for {
		msgs, err := ob.Claim(ctx, ports.ClaimOptions{Limit: batch, Lease: 10 * time.Minute})
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		if len(msgs) == 0 {
			return nil
		}
		if len(msgs) > batch {
			return fmt.Errorf("claim with Limit %d returned %d messages", batch, len(msgs))
		}
		if err := claimed(msgs); err != nil {
			return err
		}
		claims := make([]ports.Claim, len(msgs))
		for i, m := range msgs {
			claims[i] = m.Claim()
		}
		if err := ob.Complete(ctx, claims...); err != nil {
			return fmt.Errorf("complete: %w", err)
		}
		if err := completed(msgs); err != nil {
			return err
		}
	}
}

func requireEmptyOutbox(t *testing.T, db bun.IDB, table string) {
	t.Helper()
	var n int
	require.NoError(t, db.NewRaw("SELECT COUNT(*) FROM "+table).Scan(context.Background(), &n))
	require.Zero(t, n, "the outbox table is empty")
}

// TestConcurrentClaimersDeliverExactlyOnce drains 10,000 messages with 8
// workers: every message is delivered exactly once, and no message is ever
// held by two live claims.
func TestConcurrentClaimersDeliverExactlyOnce(t *testing.T) {
	t.Parallel()
	eachRoute(t, testConcurrentClaimersDeliverExactlyOnce)
}

func testConcurrentClaimersDeliverExactlyOnce(t *testing.T, r route) {
	const total, workers, batch = 10_000, 8, 10
	drv := routeMigrated(t, r)
	db, ob := drv.DB(), drv.Outbox()
	ids := seedMessages(t, ob, total)

	var (
		mu         sync.Mutex
		live       = map[string]int{} // message ID -> worker holding it
		deliveries = map[string]int{} // message ID -> completed deliveries
	)
	start := make(chan struct{})
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- drain(context.Background(), ob, batch,
				func(msgs []ports.ClaimedMessage) error {
					mu.Lock()
					defer mu.Unlock()
					for _, m := range msgs {
						if holder, held := live[m.ID]; held {
							return fmt.Errorf("message %s handed to worker %d while worker %d holds it", m.ID, w, holder)
						}
						if m.Attempts != 1 {
							return fmt.Errorf("message %s claimed with Attempts %d", m.ID, m.Attempts)
						}
						live[m.ID] = w
					}
					return nil
				},
				func(msgs []ports.ClaimedMessage) error {
					mu.Lock()
					defer mu.Unlock()
					for _, m := range msgs {
						delete(live, m.ID)
						deliveries[m.ID]++
					}
					return nil
				})
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, deliveries, total, "every message was delivered")
	for _, id := range ids {
		require.Equal(t, 1, deliveries[id], "message %s delivered exactly once", id)
	}
	require.Empty(t, live)
	requireEmptyOutbox(t, db, "outbox_messages")
}

// Environment of the helper process that TestClaimersInSeparateProcesses
// starts.
const (
	helperEnvURL    = "WHARF_PG_HELPER_URL"    // URL of the test's database, directly or through PgBouncer
	helperEnvOut    = "WHARF_PG_HELPER_OUT"    // file to write completed IDs to, one per line
	helperEnvWorker = "WHARF_PG_HELPER_WORKER" // process number, for messages
)

// TestHelperProcess is not a test: TestClaimersInSeparateProcesses runs the
// test binary again with only this test selected and the helper environment
// set. It then drains the outbox with several goroutines and writes the IDs
// it completed to the output file. Without the environment it returns at
// once.
func TestHelperProcess(t *testing.T) {
	u := os.Getenv(helperEnvURL)
	if u == "" {
		return
	}
	const goroutines, batch = 4, 10
	ctx := context.Background()
	drv, err := postgres.Open(ctx, u, wharf.Options{Pool: wharf.PoolOptions{MaxOpenConns: goroutines}})
	require.NoError(t, err)
	defer drv.Close()
	ob := drv.Outbox()
	out, err := os.Create(os.Getenv(helperEnvOut))
	require.NoError(t, err)
	defer out.Close()
	w := bufio.NewWriter(out)

	var mu sync.Mutex
	errs := make(chan error, goroutines)
	for range goroutines {
		go func() {
			errs <- drain(ctx, ob, batch,
				func([]ports.ClaimedMessage) error { return nil },
				func(msgs []ports.ClaimedMessage) error {
					mu.Lock()
					defer mu.Unlock()
					for _, m := range msgs {
						if _, err := fmt.Fprintf(w, "%s %d\n", m.ID, m.Attempts); err != nil {
							return err
						}
					}
					return nil
				})
		}()
	}
	for range goroutines {
		require.NoError(t, <-errs, "helper process %s", os.Getenv(helperEnvWorker))
	}
	require.NoError(t, w.Flush())
	require.NoError(t, out.Close())
}

// TestClaimersInSeparateProcesses drains 10,000 messages from one table with
// three OS processes of four claimers each: across the processes every
// message is delivered exactly once, on its first attempt, and the table
// ends empty. Through PgBouncer the processes share the pooler's server
// connections.
func TestClaimersInSeparateProcesses(t *testing.T) {
	t.Parallel()
	eachRoute(t, testClaimersInSeparateProcesses)
}

func testClaimersInSeparateProcesses(t *testing.T, r route) {
	const total, processes = 10_000, 3
	dbURL := newDatabase(t, r).url
	drv := openDriver(t, dbURL, wharf.Options{})
	require.NoError(t, drv.Migrate(context.Background()))
	db, ob := drv.DB(), drv.Outbox()
	ids := seedMessages(t, ob, total)

	dir := t.TempDir()
	cmds := make([]*exec.Cmd, processes)
	outputs := make([]*strings.Builder, processes)
	for p := range processes {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v=false")
		cmd.Env = append(os.Environ(),
			helperEnvURL+"="+dbURL,
			helperEnvOut+"="+filepath.Join(dir, fmt.Sprintf("worker-%d.txt", p)),
			helperEnvWorker+"="+strconv.Itoa(p),
		)
		outputs[p] = &strings.Builder{}
		cmd.Stdout, cmd.Stderr = outputs[p], outputs[p]
		require.NoError(t, cmd.Start())
		cmds[p] = cmd
	}
	var failed []error
	for p, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			failed = append(failed, fmt.Errorf("helper process %d: %w\n%s", p, err, outputs[p]))
		}
	}
	require.NoError(t, errors.Join(failed...))

	deliveries := map[string]int{}
	perProcess := make([]int, processes)
	for p := range processes {
		data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("worker-%d.txt", p)))
		require.NoError(t, err)
		for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if line == "" {
				continue
			}
			id, attempts, ok := strings.Cut(line, " ")
			require.True(t, ok, line)
			require.Equal(t, "1", attempts, "message %s delivered on its first attempt", id)
			deliveries[id]++
			perProcess[p]++
		}
	}
	require.Len(t, deliveries, total, "every message was delivered")
	for _, id := range ids {
		require.Equal(t, 1, deliveries[id], "message %s delivered exactly once across processes", id)
	}
	t.Logf("messages completed per process: %v", perProcess)
	working := 0
	for _, n := range perProcess {
		if n > 0 {
			working++
		}
	}
	require.Greater(t, working, 1, "the processes shared the work")
	requireEmptyOutbox(t, db, "outbox_messages")
}
