package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/bench/latency"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	_ "github.com/wharf-go/wharf/providers/postgres" // postgres:// URLs
)

const (
	system = "wharf"
	topic  = "bench.long_horizon"
	table  = "outbox_messages" // wharf's default outbox table
	// claimWindow is the span of the rolling pickup percentiles.
	claimWindow = 30 * time.Second
	// producerPeriod is the producer's pacing step; each step inserts the
	// jobs its rate owes (at most producerBatchMax) in one transaction.
	producerPeriod   = 10 * time.Millisecond
	producerBatchMax = 128
	// pollInterval is the relay's idle poll (River's adapter fetches every
	// 50ms); notifications wake it sooner.
	pollInterval = 50 * time.Millisecond
)

// eventTables and eventIndexes are what adapter.json declares; the
// descriptor repeats them (the harness checks it against the manifest).
var (
	eventTables  = []string{"public." + table}
	eventIndexes = []string{"public." + table + "_pkey", "public." + table + "_claim_idx", "public." + table + "_key_idx"}
)

// depthQuery counts the ready jobs through the claim index's predicate
// (status = 'pending', ordered by available_at): the jobs a claim could
// take now. It runs once per tick, never more often (see README.md).
const depthQuery = `SELECT count(*) FROM "` + table + `" WHERE status = 'pending' AND available_at <= ? AND (locked_until IS NULL OR locked_until <= ?)`

// state is what the producer, the handler and the sampler share.
type state struct {
	enqueued  atomic.Uint64
	picked    atomic.Uint64 // handler starts
	completed atomic.Uint64 // handlers finished
	depth     atomic.Int64  // last queue_depth (-1 before the first count)
	baseline  int64         // ready jobs found at start-up (counters mode)
	window    *latency.Window
}

// out writes JSON lines to stdout, one whole line per write.
type out struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *out) emit(rec map[string]any) {
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	_, _ = o.w.Write(append(b, '\n'))
}

// isoTime is the harness's timestamp format (UTC, milliseconds, Z).
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	started := time.Now()
	drv, err := wharf.Open(ctx, withAppName(cfg.URL, "wharf-bench"), wharf.Options{
		Listen: wharf.ListenOptions{ApplicationName: "wharf-bench-listener"},
		Logger: log,
	})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer drv.Close()
	if err := drv.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if cfg.Scenario == "migrate_only" {
		log.Info("migrate_only: tables created")
		return nil
	}
	o := &out{w: stdout}
	o.emit(map[string]any{
		"kind":           "descriptor",
		"system":         system,
		"event_tables":   eventTables,
		"event_indexes":  eventIndexes,
		"extensions":     []string{},
		"version":        version(),
		"schema_version": schemaVersion(drv),
		"db_name":        cfg.DBName,
		"started_at":     isoTime(started),
		"instance_id":    cfg.InstanceID,
		"config": map[string]any{
			"producer_mode": cfg.Mode, "producer_rate": cfg.Rate, "target_depth": cfg.TargetDepth,
			"worker_count": cfg.Workers, "job_payload_bytes": cfg.PayloadBytes, "job_work_ms": cfg.Work.Milliseconds(),
			"sample_every_s": int(cfg.SampleEvery / time.Second), "queue_depth_source": cfg.DepthSource,
			"relay": fmt.Sprintf("one relay, Concurrency %d, PollInterval %v, LISTEN/NOTIFY", cfg.Workers, pollInterval),
		},
	})

	w, err := latency.NewWindow(claimWindow, time.Second)
	if err != nil {
		return err
	}
	st := &state{window: w}
	st.depth.Store(-1)
	if cfg.DepthSource == "counters" {
		// Jobs left by an earlier run count until they are picked up.
		if st.baseline, err = countReady(ctx, drv); err != nil {
			return fmt.Errorf("queue depth: %w", err)
		}
	}

	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (wharf.Outbox, error) { return tx.Outbox, nil }, wharf.UnitOfWorkOptions{})
	if err != nil {
		return err
	}
	hs := relay.NewHandlers()
	if err := hs.Handle(topic, handler(st, cfg.Work), relay.TopicOptions{}); err != nil {
		return err
	}
	rl, err := relay.New(drv.Outbox(), hs, relay.Options{
		Concurrency:     cfg.Workers,
		PollInterval:    pollInterval,
		MaxPollInterval: pollInterval,
		ShutdownTimeout: 2 * time.Second,
		Logger:          log,
	})
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	relayErr := make(chan error, 1)
	wg.Add(3)
	go func() { defer wg.Done(); relayErr <- rl.Run(ctx) }()
	go func() { defer wg.Done(); produce(ctx, cfg, uow, st, log) }()
	go func() { defer wg.Done(); sample(ctx, cfg, st, o) }()
	if cfg.DepthSource == "query" && cfg.InstanceID == 0 {
		wg.Add(1)
		go func() { defer wg.Done(); pollDepth(ctx, cfg, drv, st, log) }()
	}
	<-ctx.Done()
	log.Info("shutdown signal received")
	wg.Wait()
	if err := <-relayErr; err != nil && !errors.Is(err, context.Canceled) {
		log.Warn("relay shutdown", slog.String("err", err.Error()))
	}
	return nil
}

// handler records the pickup latency (insert → handler start) from the
// enqueue time in the payload, then does JOB_WORK_MS of work.
func handler(st *state, work time.Duration) relay.Handler {
	return func(ctx context.Context, msg ports.ClaimedMessage) error {
		now := time.Now()
		if t := payloadTime(msg.Payload); t > 0 {
			st.window.Record(now, now.Sub(time.Unix(0, t)))
		}
		st.picked.Add(1)
		if work > 0 {
			tm := time.NewTimer(work)
			select {
			case <-tm.C:
			case <-ctx.Done():
				tm.Stop()
				return ctx.Err()
			}
		}
		st.completed.Add(1)
		return nil
	}
}

// produce inserts jobs until ctx ends: in fixed mode at PRODUCER_RATE, in
// depth-target mode up to TARGET_DEPTH ready jobs (by the counters). Each
// step inserts its jobs in one unit-of-work transaction.
func produce(ctx context.Context, cfg config, uow *wharf.UnitOfWork[wharf.Outbox], st *state, log *slog.Logger) {
	pad := strings.Repeat("x", max(0, cfg.PayloadBytes-40))
	var seq uint64
	credit := 0.0
	last := time.Now()
	tk := time.NewTicker(producerPeriod)
	defer tk.Stop()
	var failures int
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		now := time.Now()
		n := 0
		if cfg.Mode == "fixed" {
			credit = min(credit+float64(cfg.Rate)*now.Sub(last).Seconds(), float64(cfg.Rate)) // at most 1s of catch-up
			n = min(int(credit), producerBatchMax)
		} else {
			ready := int64(st.enqueued.Load()) + st.baseline - int64(st.picked.Load())
			n = min(max(0, cfg.TargetDepth-int(ready)), producerBatchMax)
		}
		last = now
		if n == 0 {
			continue
		}
		msgs := make([]ports.OutboxMessage, n)
		t := time.Now().UnixNano()
		for i := range msgs {
			msgs[i] = ports.OutboxMessage{Topic: topic, Payload: json.RawMessage(`{"seq":` + strconv.FormatUint(seq+uint64(i), 10) + `,"t":` + strconv.FormatInt(t, 10) + `,"pad":"` + pad + `"}`)}
		}
		err := uow.Transaction(ctx, func(ctx context.Context, ob wharf.Outbox) error {
			_, err := ob.Enqueue(ctx, msgs...)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			if failures == 1 || failures%100 == 0 {
				log.Warn("producer insert failed", slog.Int("failures", failures), slog.String("err", err.Error()))
			}
			continue
		}
		seq += uint64(n)
		if cfg.Mode == "fixed" {
			credit -= float64(n)
		}
		st.enqueued.Add(uint64(n))
	}
}

// sample emits the metrics on every SAMPLE_EVERY_S boundary of the wall
// clock, the first one at the next boundary.
func sample(ctx context.Context, cfg config, st *state, o *out) {
	every := cfg.SampleEvery
	next := time.Now().Truncate(every).Add(every)
	lastEnq, lastDone, lastT := st.enqueued.Load(), st.completed.Load(), time.Now()
	for {
		tm := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			tm.Stop()
			return
		case <-tm.C:
		}
		now := time.Now()
		dt := max(now.Sub(lastT).Seconds(), 0.001)
		enq, done := st.enqueued.Load(), st.completed.Load()
		h := st.window.Snapshot(now)
		depth := st.depth.Load()
		if cfg.DepthSource == "counters" || depth < 0 {
			depth = max(0, int64(enq)+st.baseline-int64(st.picked.Load()))
		}
		metrics := []struct {
			name   string
			value  float64
			window float64
		}{
			{"claim_p50_ms", h.Millis(0.50), claimWindow.Seconds()},
			{"claim_p95_ms", h.Millis(0.95), claimWindow.Seconds()},
			{"claim_p99_ms", h.Millis(0.99), claimWindow.Seconds()},
			{"enqueue_rate", float64(enq-lastEnq) / dt, every.Seconds()},
			{"completion_rate", float64(done-lastDone) / dt, every.Seconds()},
			{"queue_depth", float64(depth), 0},
			{"producer_target_rate", float64(cfg.Rate), 0},
		}
		ts := isoTime(next)
		for _, m := range metrics {
			if cfg.InstanceID != 0 && (m.name == "queue_depth" || m.name == "producer_target_rate") {
				continue // global observations come from instance 0 only
			}
			if m.name == "producer_target_rate" && cfg.Mode != "fixed" {
				continue
			}
			o.emit(map[string]any{
				"t": ts, "system": system, "kind": "adapter", "subject_kind": "adapter", "subject": "",
				"metric": m.name, "value": round3(m.value), "window_s": m.window, "instance_id": cfg.InstanceID,
			})
		}
		lastEnq, lastDone, lastT = enq, done, now
		next = next.Add(every)
		for !next.After(time.Now()) { // a tick was missed (machine stalled): realign
			next = next.Add(every)
		}
	}
}

// pollDepth counts the ready jobs once per tick, half a tick before it,
// with a timeout of half a tick.
func pollDepth(ctx context.Context, cfg config, drv *wharf.Driver, st *state, log *slog.Logger) {
	every := cfg.SampleEvery
	next := time.Now().Truncate(every).Add(every / 2)
	for {
		tm := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			tm.Stop()
			return
		case <-tm.C:
		}
		qctx, cancel := context.WithTimeout(ctx, every/2)
		n, err := countReady(qctx, drv)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("queue depth query failed; the last value stands", slog.String("err", err.Error()))
		} else {
			st.depth.Store(n)
		}
		next = next.Add(every)
		for !next.After(time.Now()) {
			next = next.Add(every)
		}
	}
}

func countReady(ctx context.Context, drv *wharf.Driver) (int64, error) {
	now := core.FormatTime(time.Now())
	var n int64
	err := drv.DB().QueryRowContext(ctx, depthQuery, now, now).Scan(&n)
	return n, err
}

// payloadTime extracts "t" (enqueue time, Unix ns) from a payload.
func payloadTime(p []byte) int64 {
	s := string(p)
	i := strings.Index(s, `"t":`)
	if i < 0 {
		return 0
	}
	j := i + 4
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	t, _ := strconv.ParseInt(s[i+4:j], 10, 64)
	return t
}

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// withAppName sets application_name on a URL that has none, so that the
// adapter's sessions are recognisable in pg_stat_activity.
func withAppName(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	if q.Get("application_name") != "" {
		return raw
	}
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// buildVersion, when set at link time (-ldflags "-X main.buildVersion=v1"),
// is the descriptor's version.
var buildVersion string

// version names the build: buildVersion, else the VCS revision the binary
// was built from (with -dirty when the tree had changes), else "devel".
func version() string {
	if buildVersion != "" {
		return buildVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "wharf@" + rev
}

// schemaVersion identifies the outbox schema: a hash of the statements
// that Migrate runs.
func schemaVersion(drv *wharf.Driver) string {
	sum := sha256.Sum256([]byte(strings.Join(drv.SetupStatements(), ";\n")))
	return "setup-" + hex.EncodeToString(sum[:6])
}
