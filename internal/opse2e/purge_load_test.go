package opse2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

// envLoadDuration sets how long TestPurgeUnderLoad runs per dialect
// (time.ParseDuration); `make test-purge-load` runs it for 60s.
const envLoadDuration = "WHARF_PURGE_LOAD_DURATION"

// Load parameters: records live loadTTL, the maintainer runs every
// loadInterval, loadWorkers goroutines reserve and complete new keys.
const (
	loadTTL         = 300 * time.Millisecond
	loadInterval    = 200 * time.Millisecond
	loadWorkers     = 4
	defaultLoadTime = 6 * time.Second
)

// loadLog records when reservations started and when rounds ran.
type loadLog struct {
	mu      sync.Mutex
	starts  []time.Time // of every Reserve, in order per worker
	done    []time.Time // when each Reserve+Complete finished
	rounds  []wharf.MaintenanceRound
	samples []sample
}

type sample struct {
	from, to time.Time // the COUNT(*) ran between them
	rows     int
}

// startsIn counts the reservations started in (from, to].
func (l *loadLog) startsIn(sorted []time.Time, from, to time.Time) int {
	i := sort.Search(len(sorted), func(i int) bool { return sorted[i].After(from) })
	j := sort.Search(len(sorted), func(i int) bool { return sorted[i].After(to) })
	return j - i
}

// TestPurgeUnderLoad reserves and completes new idempotency keys with a
// short TTL from several goroutines while a Maintainer purges: the row
// count stays within what the TTL and the purge interval allow, every
// reservation succeeds (and a live key replays) while the purge runs, and
// reservations complete during purge rounds, not only between them.
func TestPurgeUnderLoad(t *testing.T) {
	t.Parallel()
	run := defaultLoadTime
	if v := os.Getenv(envLoadDuration); v != "" {
		var err error
		run, err = time.ParseDuration(v)
		require.NoError(t, err, envLoadDuration)
	}
	eachDialect(t, func(t *testing.T, d dialect) {
		ctx := context.Background()
		drv := openDriver(t, d, d.newDB(t), wharf.Options{Idempotency: wharf.IdempotencyOptions{TTL: loadTTL}})
		require.NoError(t, drv.Migrate(ctx))
		log := &loadLog{}
		m, err := wharf.NewMaintainer(drv, wharf.MaintainerOptions{
			Interval: loadInterval, BatchSize: 200,
			OnRound: func(r wharf.MaintenanceRound) {
				log.mu.Lock()
				defer log.mu.Unlock()
				log.rounds = append(log.rounds, r)
			},
		})
		require.NoError(t, err)

		loadCtx, stop := context.WithTimeout(ctx, run)
		defer stop()
		var wg sync.WaitGroup
		maintDone := make(chan error, 1)
		go func() { maintDone <- m.Run(loadCtx) }()
		errs := make(chan error, loadWorkers+1)
		for w := range loadWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- reserveLoop(loadCtx, drv.Idempotency(), w, log)
			}()
		}
		wg.Add(1)
		go func() { // the sampler
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-loadCtx.Done():
					errs <- nil
					return
				case <-tick.C:
				}
				from := time.Now()
				var n int
				if err := drv.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM idempotency_records").Scan(&n); err != nil {
					errs <- fmt.Errorf("count rows: %w", err)
					return
				}
				log.mu.Lock()
				log.samples = append(log.samples, sample{from: from, to: time.Now(), rows: n})
				log.mu.Unlock()
			}
		}()
		wg.Wait()
		require.NoError(t, <-maintDone)
		for range loadWorkers + 1 {
			require.NoError(t, <-errs)
		}

		log.mu.Lock()
		defer log.mu.Unlock()
		starts := append([]time.Time(nil), log.starts...)
		sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
		done := append([]time.Time(nil), log.done...)
		sort.Slice(done, func(i, j int) bool { return done[i].Before(done[j]) })
		require.GreaterOrEqual(t, len(starts), 200, "enough load to matter")

		// Every round ran to its end; record how long the longest took.
		var purged int64
		var longest time.Duration
		overlapped := 0
		for i, r := range log.rounds {
			if i == len(log.rounds)-1 && errors.Is(r.Err, context.DeadlineExceeded) {
				continue // the end of the load stopped the last round
			}
			require.NoError(t, r.Err, "round %d", i)
			purged += r.IdempotencyPurged
			longest = max(longest, r.Duration)
			if r.IdempotencyPurged > 0 {
				overlapped += log.startsIn(done, r.Started, r.Started.Add(r.Duration))
			}
		}
		require.GreaterOrEqual(t, len(log.rounds), int(run/loadInterval)/2, "the maintainer ran its rounds")
		require.Greater(t, purged, int64(len(starts))/2, "most records were purged")
		require.Positive(t, overlapped, "reservations completed while purge rounds ran")

		// A record started at s expires by s+TTL and is purged by the
		// first round after that: rows never outnumber the reservations
		// started within that window (plus scheduling slack).
		window := loadTTL + loadInterval*11/10 + longest + time.Second
		maxRows := 0
		for _, s := range log.samples {
			maxRows = max(maxRows, s.rows)
			if s.from.Before(starts[0].Add(window)) {
				continue
			}
			bound := log.startsIn(starts, s.from.Add(-window), s.to)
			require.LessOrEqual(t, s.rows, bound, "rows at %v: at most the %d reservations started in the %v before", s.to.Sub(starts[0]), bound, window)
		}
		require.Less(t, maxRows, len(starts)/2, "the table stays far below the %d records written", len(starts))
		t.Logf("%s: %d reservations in %v, %d purged in %d rounds (longest %v), at most %d rows at once; %d reservations completed during purge rounds",
			d.name, len(starts), run, purged, len(log.rounds), longest, maxRows, overlapped)
	})
}

// reserveLoop reserves and completes new keys until ctx ends; every 25th
// key is reserved again at once, which must replay (the purge never takes
// a live record).
func reserveLoop(ctx context.Context, store wharf.Idempotency, worker int, log *loadLog) error {
	for i := 0; ctx.Err() == nil; i++ {
		req := ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "load", Key: fmt.Sprintf("w%d-%d", worker, i)}, Fingerprint: "f"}
		start := time.Now()
		r, err := store.Reserve(ctx, req)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reserve %s: %w", req.Key, err)
		}
		if r.Status != ports.Reserved {
			return fmt.Errorf("reserve of the new key %s: %v", req.Key, r.Status)
		}
		if err := store.Complete(ctx, r, json.RawMessage(`{"ok":true}`)); err != nil && ctx.Err() == nil {
			return fmt.Errorf("complete %s: %w", req.Key, err)
		}
		end := time.Now()
		log.mu.Lock()
		log.starts = append(log.starts, start)
		log.done = append(log.done, end)
		log.mu.Unlock()
		if i%25 == 0 && ctx.Err() == nil {
			again, err := store.Reserve(ctx, req)
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				return fmt.Errorf("reserve %s again: %w", req.Key, err)
			case again.Status != ports.Replay && time.Since(start) < loadTTL:
				return fmt.Errorf("reserve of the live key %s again: %v, want replay", req.Key, again.Status)
			}
		}
	}
	return nil
}
