// Command bench measures wharf's outbox beside raw SQL (the practical ceiling
// for the same statements) and River (PostgreSQL), in one run:
//
//	cd bench && go run . [flags]
//
// or `make bench` from the repository root, which starts throwaway
// PostgreSQL and MariaDB servers with fsync on (scripts/testdb.sh) and passes
// their URLs in WHARF_TEST_POSTGRES_URL and WHARF_TEST_MYSQL_URL. A dialect
// whose URL is missing is skipped with a notice.
//
// Workloads (every dialect unless noted):
//
//	enqueue  producers insert 1 and 100 messages per transaction (msgs/s)
//	drain    a backlog (default 100,000) drained by a no-op handler at 1, 2,
//	         4 and 8 workers; peak heap and RSS of the draining process
//	e2e      producers and consumers together for a fixed time: msgs/s
//	         delivered and enqueue→handler latency p50/p99 (the paced case
//	         measures same-process wake-ups)
//	slow     one relay draining a backlog with a handler that takes 5 ms
//	keyed    50 keys × 40 messages, 30% of handler calls failing: the time
//	         until every message was delivered in key order
//	scale    drain rate and claim latency over backlogs of 10k, 100k and 1M
//	         messages; enqueue rate beside 10k, 100k and 1M dead letters
//	notify   PostgreSQL: enqueue at 1, 4, 16 and 64 producers, with and
//	         without pg_notify
//	idem     RunIdempotently (reserve, business insert, complete in one
//	         transaction) beside the bare business insert; replay latency
//
// Every case runs -count times (3 by default; -quick: once) and the median
// is kept; the implementations compared in one row run in turn within each
// round (wharf, raw, wharf, raw, ...), so that both see the same load.
// Every run is in a child process of this binary (so RSS and heap figures
// belong to that case alone); the parent prepares databases, seeds
// backlogs, prints the table and writes the JSON.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Config is what the flags set; it travels to child processes in Spec.
type Config struct {
	Quick        bool          `json:"quick"`
	Backlog      int           `json:"backlog"`
	Workers      []int         `json:"workers"`
	Batch        int           `json:"batch"`
	EnqDuration  time.Duration `json:"enqueue_duration"`
	EnqBatches   []int         `json:"enqueue_batches"`
	Producers    int           `json:"producers"`
	E2EDuration  time.Duration `json:"e2e_duration"`
	E2EWorkers   int           `json:"e2e_workers"`
	E2ERates     []int         `json:"e2e_rates"`
	PollInterval time.Duration `json:"poll_interval"`
	Lease        time.Duration `json:"lease"`
	RiverWorkers int           `json:"river_max_workers"`
	// RelayConcurrency is each wharf relay's Concurrency (0: Batch).
	RelayConcurrency int `json:"relay_concurrency"`
	// E2ERelays is the number of wharf relays in the end-to-end cases.
	E2ERelays   int           `json:"e2e_relays"`
	TraceSQL    bool          `json:"trace_sql"`
	RiverConns  int32         `json:"river_pool_conns"`
	Dialects    []string      `json:"dialects"`
	Impls       []string      `json:"impls"`
	Workloads   []string      `json:"workloads"`
	Only        string        `json:"only,omitempty"`
	CPUProfile  string        `json:"cpuprofile,omitempty"`
	Out         string        `json:"out"`
	CaseTimeout time.Duration `json:"case_timeout"`
	Count       int           `json:"count"`
	Verbose     bool          `json:"verbose"`

	// SlowHandler is the handler latency of the slow workload.
	SlowHandler time.Duration `json:"slow_handler"`
	// SlowBacklog is the backlog of the slow workload.
	SlowBacklog int `json:"slow_backlog"`
	// Keys, PerKey and FailPct shape the keyed workload.
	Keys    int `json:"keys"`
	PerKey  int `json:"per_key"`
	FailPct int `json:"fail_pct"`
	// KeyedRelays is the number of relays (in this process) of the keyed
	// workload.
	KeyedRelays int `json:"keyed_relays"`
	// ScaleSizes are the backlogs (and dead-letter counts) of the scale
	// workload.
	ScaleSizes []int `json:"scale_sizes"`
	// NotifyProducers are the producer counts of the notify workload.
	NotifyProducers []int `json:"notify_producers"`
	// IdemDuration is the duration of each idempotency case.
	IdemDuration time.Duration `json:"idem_duration"`
	// CPUProfileRate, MemProfile: see the flags.
	MemProfile string `json:"memprofile,omitempty"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(childMain())
	}
	os.Exit(parentMain())
}

func parentMain() int {
	var (
		c                                         Config
		workers, dialects, impls, loads, enqBatch string
	)
	flag.BoolVar(&c.Quick, "quick", false, "smoke run (under a minute): backlog 5,000, workers 1 and 4, enqueue 0.7s, e2e 1s (flags given explicitly win)")
	flag.IntVar(&c.Backlog, "backlog", 100_000, "messages in the drain backlog")
	flag.StringVar(&workers, "workers", "1,2,4,8", "drain concurrencies (wharf relay Concurrency / raw goroutines)")
	flag.IntVar(&c.Batch, "batch", 100, "claim batch size (wharf relay BatchSize and raw claim LIMIT)")
	flag.DurationVar(&c.EnqDuration, "enqueue-duration", 3*time.Second, "duration of each enqueue case")
	flag.StringVar(&enqBatch, "enqueue-batches", "1,100", "messages per transaction in the enqueue cases")
	flag.IntVar(&c.Producers, "producers", 4, "concurrent producers (enqueue and e2e; SQLite always uses 1: it has one writer)")
	flag.DurationVar(&c.E2EDuration, "e2e-duration", 8*time.Second, "duration of each end-to-end case")
	flag.IntVar(&c.E2EWorkers, "e2e-workers", 4, "consumer concurrency in the end-to-end cases (wharf relay / raw goroutines)")
	var e2eRates string
	flag.StringVar(&e2eRates, "e2e-rates", "0,500", "total producer rates in msgs/s of the end-to-end cases, one case each (0: as fast as they go)")
	flag.DurationVar(&c.PollInterval, "poll", 20*time.Millisecond, "wharf relay PollInterval and raw idle poll (River: FetchPollInterval 20ms, FetchCooldown 2ms)")
	flag.DurationVar(&c.Lease, "lease", 30*time.Second, "claim lease")
	flag.IntVar(&c.RiverWorkers, "river-workers", 2000, "River MaxWorkers (River's own benchmark uses 2,000)")
	flag.IntVar(&c.RelayConcurrency, "relay-concurrency", 0, "Concurrency of each wharf relay (0: twice the batch size, so that claims come back full)")
	flag.IntVar(&c.E2ERelays, "e2e-relays", 1, "wharf relays in the end-to-end cases (one relay per process is the natural deployment; on PostgreSQL every relay wakes on every notification)")
	flag.BoolVar(&c.TraceSQL, "trace-sql", false, "count wharf's statements per message by shape (bun query hook; diagnostic, costs a little)")
	var riverConns int
	flag.IntVar(&riverConns, "river-conns", 20, "River pgxpool MaxConns")
	flag.StringVar(&dialects, "dialects", "sqlite,postgres,mysql", "dialects to run")
	flag.StringVar(&impls, "impls", "wharf,raw,river", "implementations to run; diagnostics: wharf-outbox (wharf's Claim+Complete in plain loops, no relay), wharf-defaults (relay with default options), wharf-serial (prototype: outbox calls serialized by a mutex), wharf-fastcomplete (prototype: Complete as one DELETE checked by its row count)")
	flag.StringVar(&loads, "workloads", "enqueue,drain,e2e,slow,keyed,idem,notify,scale", "workloads to run")
	flag.StringVar(&c.Only, "only", "", "run only the cases whose id (e.g. drain/postgres/wharf/w=4) matches this regexp")
	flag.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile per case to PREFIX.<case>.pprof")
	flag.StringVar(&c.Out, "out", "results/latest.json", "JSON output file")
	flag.DurationVar(&c.CaseTimeout, "case-timeout", 4*time.Minute, "a case still running after this fails")
	flag.BoolVar(&c.Verbose, "v", false, "log the children's progress")
	flag.IntVar(&c.Count, "count", 3, "run every case this many times and keep the median (the machine may be shared); -quick: 1")
	flag.DurationVar(&c.SlowHandler, "slow-handler", 5*time.Millisecond, "handler latency of the slow workload")
	flag.IntVar(&c.SlowBacklog, "slow-backlog", 50_000, "backlog of the slow workload")
	flag.IntVar(&c.Keys, "keys", 50, "ordering keys of the keyed workload")
	flag.IntVar(&c.PerKey, "per-key", 40, "messages per key of the keyed workload")
	flag.IntVar(&c.FailPct, "fail-pct", 30, "percentage of handler calls that fail in the keyed workload")
	flag.IntVar(&c.KeyedRelays, "keyed-relays", 1, "relays of the keyed workload (one process)")
	var scaleSizes, notifyProducers string
	flag.StringVar(&scaleSizes, "scale-sizes", "10000,100000,1000000", "backlogs (drain) and dead letters (enqueue) of the scale workload")
	flag.StringVar(&notifyProducers, "notify-producers", "1,4,16,64", "producer counts of the notify workload")
	flag.DurationVar(&c.IdemDuration, "idem-duration", 3*time.Second, "duration of each idempotency case")
	flag.StringVar(&c.MemProfile, "memprofile", "", "write an allocation profile per case to PREFIX.<case>.mprof (sampling every allocation: slows the case)")
	flag.Parse()
	c.RiverConns = int32(riverConns)

	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	if c.Quick {
		if !set["backlog"] {
			c.Backlog = 5_000
		}
		if !set["workers"] {
			workers = "1,4"
		}
		if !set["enqueue-duration"] {
			c.EnqDuration = 700 * time.Millisecond
		}
		if !set["e2e-duration"] {
			c.E2EDuration = time.Second
		}
		if !set["count"] {
			c.Count = 1
		}
		if !set["scale-sizes"] {
			scaleSizes = "2000,20000"
		}
		if !set["slow-backlog"] {
			c.SlowBacklog = 5_000
		}
		if !set["notify-producers"] {
			notifyProducers = "1,16"
		}
		if !set["idem-duration"] {
			c.IdemDuration = 700 * time.Millisecond
		}
	}
	if c.ScaleSizes, err = parseInts(scaleSizes); err != nil {
		return fail("-scale-sizes: %v", err)
	}
	if c.NotifyProducers, err = parseInts(notifyProducers); err != nil {
		return fail("-notify-producers: %v", err)
	}
	if c.Count < 1 {
		return fail("-count %d: run every case at least once", c.Count)
	}
	if c.FailPct < 0 || c.FailPct > 90 {
		return fail("-fail-pct %d: use 0 to 90", c.FailPct)
	}
	if c.Workers, err = parseInts(workers); err != nil {
		return fail("-workers: %v", err)
	}
	for _, p := range splitList(e2eRates) {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n < 0 {
			return fail("-e2e-rates: %q is not a rate", p)
		}
		c.E2ERates = append(c.E2ERates, n)
	}
	if c.EnqBatches, err = parseInts(enqBatch); err != nil {
		return fail("-enqueue-batches: %v", err)
	}
	c.Dialects, c.Impls, c.Workloads = splitList(dialects), splitList(impls), splitList(loads)
	if c.Only != "" {
		if _, err := regexp.Compile(c.Only); err != nil {
			return fail("-only: %v", err)
		}
	}
	if c.CPUProfile != "" {
		if c.CPUProfile, err = filepath.Abs(c.CPUProfile); err != nil {
			return fail("-cpuprofile: %v", err)
		}
	}
	if c.MemProfile != "" {
		if c.MemProfile, err = filepath.Abs(c.MemProfile); err != nil {
			return fail("-memprofile: %v", err)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	rep, err := run(ctx, c)
	if rep != nil {
		rep.TotalSeconds = time.Since(start).Seconds()
		rep.evaluateGoals()
		rep.print(os.Stdout)
		if werr := rep.write(c.Out); werr != nil {
			fmt.Fprintf(os.Stderr, "bench: write %s: %v\n", c.Out, werr)
			if err == nil {
				err = werr
			}
		} else {
			fmt.Printf("\nJSON: %s   (total %.0fs)\n", c.Out, rep.TotalSeconds)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}
	if rep.failed() {
		fmt.Fprintln(os.Stderr, "bench: some cases failed (see the table)")
		return 1
	}
	return 0
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	return 2
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		var n int
		if _, err := fmt.Sscanf(p, "%d", &n); err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", p)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return out, nil
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
