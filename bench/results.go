package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/wharf-go/wharf/core/relay"
)

// Result is one case's figures.
type Result struct {
	ID        string `json:"id"`
	Workload  string `json:"workload"`
	Dialect   string `json:"dialect"`
	Impl      string `json:"impl"`
	Workers   int    `json:"workers,omitempty"`
	Producers int    `json:"producers,omitempty"`
	MsgsPerTx int    `json:"msgs_per_tx,omitempty"`
	Rate      int    `json:"rate,omitempty"` // e2e: offered rate, 0 = producers flat out
	Variant   string `json:"variant,omitempty"`
	Size      int    `json:"size,omitempty"` // scale: backlog or dead letters

	Messages   int64   `json:"messages"`
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	// Runs holds every run's key figure under -count > 1, in round order
	// (msgs/s; p50 ms for paced e2e; seconds for keyed); the run with the
	// median key figure is the one reported.
	Runs []float64 `json:"runs,omitempty"`
	// RunsRate holds every run's msgs/s, in round order.
	RunsRate []float64 `json:"runs_rate,omitempty"`

	// e2e
	Produced       int64   `json:"produced,omitempty"`
	ProducedPerSec float64 `json:"produced_per_sec,omitempty"`
	P50ms          float64 `json:"p50_ms,omitempty"`
	P90ms          float64 `json:"p90_ms,omitempty"`
	P99ms          float64 `json:"p99_ms,omitempty"`
	MaxMs          float64 `json:"max_ms,omitempty"`
	// TxP50ms and TxP99ms are the producers' transaction latencies (enqueue
	// to commit): the part of the enqueue→handler latency before the
	// consumers can see the message.
	TxP50ms float64 `json:"tx_p50_ms,omitempty"`
	TxP99ms float64 `json:"tx_p99_ms,omitempty"`

	// memory of the child process that ran the case
	PeakHeapMiB float64 `json:"peak_heap_inuse_mib,omitempty"`
	PeakRSSMiB  float64 `json:"peak_rss_mib,omitempty"`
	StartRSSMiB float64 `json:"start_rss_mib,omitempty"`

	// ClaimP50ms and ClaimP99ms are the latencies of the relay's Claim
	// calls (drain and scale).
	ClaimP50ms float64 `json:"claim_p50_ms,omitempty"`
	ClaimP99ms float64 `json:"claim_p99_ms,omitempty"`
	Claims     int64   `json:"claims,omitempty"`
	// ReplayP50ms and ReplayP99ms: idempotency replays (idem).
	ReplayP50ms float64 `json:"replay_p50_ms,omitempty"`
	ReplayP99ms float64 `json:"replay_p99_ms,omitempty"`
	// Attempts counts handler calls (keyed).
	Attempts int64 `json:"attempts,omitempty"`

	// diagnostics
	// AllocsPerMsg and BytesPerMsg are the benchmark process's heap
	// allocations per message over the timed section.
	AllocsPerMsg float64 `json:"allocs_per_msg,omitempty"`
	BytesPerMsg  float64 `json:"bytes_per_msg,omitempty"`
	// CPUusPerMsg is the benchmark process's CPU time (user+system) per
	// message over the timed section: the client-side cost, the database
	// server's excluded. Less disturbed by other load than msgs/s.
	CPUusPerMsg float64 `json:"client_cpu_us_per_msg,omitempty"`
	// ServerCPUusPerMsg is the database server's CPU time per message over
	// the timed section (PostgreSQL and MariaDB when local; server.go).
	ServerCPUusPerMsg float64  `json:"server_cpu_us_per_msg,omitempty"`
	QueriesPerMsg     float64  `json:"queries_per_msg,omitempty"`
	Notes             []string `json:"notes,omitempty"`

	Error   string `json:"error,omitempty"`
	Skipped string `json:"skipped,omitempty"`
}

func (r *Result) ok() bool { return r.Error == "" && r.Skipped == "" && r.Seconds > 0 }

// Goal is one of the targets, judged from the figures.
type Goal struct {
	Goal   string `json:"goal"`
	Status string `json:"status"` // PASS, FAIL, N/A
	Detail string `json:"detail"`
}

// Report is the whole run.
type Report struct {
	Started      time.Time         `json:"started"`
	TotalSeconds float64           `json:"total_seconds"`
	Command      string            `json:"command"`
	Machine      map[string]string `json:"machine"`
	Config       Config            `json:"config"`
	Setup        []string          `json:"setup"`
	Results      []Result          `json:"results"`
	Goals        []Goal            `json:"goals"`
	Skipped      []string          `json:"skipped,omitempty"`
}

func (rep *Report) failed() bool {
	for _, r := range rep.Results {
		if r.Error != "" {
			return true
		}
	}
	return false
}

func (rep *Report) find(workload, dialect, impl string, workers, perTx int) *Result {
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.Workload == workload && r.Dialect == dialect && r.Impl == impl &&
			(workers < 0 || r.Workers == workers) && (perTx < 0 || r.MsgsPerTx == perTx) {
			return r
		}
	}
	return nil
}

var (
	diagName = map[string]string{"wharf-outbox": "outbox loop", "wharf-defaults": "relay defaults", "wharf-serial": "serial proto", "wharf-fastcomplete": "fast-complete proto"}
	diagHelp = map[string]string{
		"wharf-outbox":       "wharf's Outbox.Claim+Complete in plain loops, no relay (diagnostic)",
		"wharf-defaults":     "relays with default RelayOptions (BatchSize 100, Concurrency 200, PollInterval 500ms) (diagnostic)",
		"wharf-serial":       "prototype: the relay over an outbox whose calls are serialized by a mutex (diagnostic)",
		"wharf-fastcomplete": "prototype: the relay over an outbox whose Complete is one DELETE checked by its row count (diagnostic)",
	}
)

// diagnostics lists the diagnostic impls that have results in workload.
func (rep *Report) diagnostics(workload string) []string {
	var out []string
	for _, d := range []string{"wharf-outbox", "wharf-defaults", "wharf-serial", "wharf-fastcomplete"} {
		for _, r := range rep.Results {
			if r.Workload == workload && r.Impl == d {
				out = append(out, d)
				break
			}
		}
	}
	return out
}

func (rep *Report) findE2E(dialect, impl string, rate int) *Result {
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.Workload == "e2e" && r.Dialect == dialect && r.Impl == impl && r.Rate == rate {
			return r
		}
	}
	return nil
}

func (rep *Report) write(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func rate(r *Result) string {
	switch {
	case r == nil:
		return "-"
	case r.Error != "":
		return "FAILED"
	case r.Skipped != "":
		return "n/a"
	}
	return fmt.Sprintf("%.0f", r.MsgsPerSec)
}

// rateSpread is rate with the spread of the runs' msgs/s around the
// median: ±N% is the largest distance of a run from the median.
func rateSpread(r *Result) string {
	out := rate(r)
	if r == nil || !r.ok() || len(r.RunsRate) < 2 || r.MsgsPerSec == 0 {
		return out
	}
	return out + " " + spread(r.RunsRate, r.MsgsPerSec)
}

func spread(xs []float64, m float64) string {
	if len(xs) < 2 || m == 0 {
		return ""
	}
	d := 0.0
	for _, x := range xs {
		d = max(d, math.Abs(x-m)/m)
	}
	return fmt.Sprintf("±%.0f%%", 100*d)
}

func ratio(a, b *Result) string {
	if a == nil || b == nil || !a.ok() || !b.ok() || b.MsgsPerSec == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a.MsgsPerSec/b.MsgsPerSec)
}

// ratioRange is ratio (of the medians) with the range of the ratios of the
// runs made in the same round.
func ratioRange(a, b *Result) string {
	out := ratio(a, b)
	if out == "-" || len(a.RunsRate) < 2 || len(a.RunsRate) != len(b.RunsRate) {
		return out
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range a.RunsRate {
		if b.RunsRate[i] == 0 {
			return out
		}
		x := a.RunsRate[i] / b.RunsRate[i]
		lo, hi = min(lo, x), max(hi, x)
	}
	return fmt.Sprintf("%s (%.2f–%.2f)", out, lo, hi)
}

func lat(r *Result) string {
	if r == nil || !r.ok() || r.P50ms == 0 {
		return "-"
	}
	out := fmt.Sprintf("%.1f / %.1f", r.P50ms, r.P99ms)
	if r.Rate > 0 && len(r.Runs) > 1 {
		out += fmt.Sprintf(" (p50 %s)", spread(r.Runs, r.P50ms))
	}
	return out
}

func cpus(rs ...*Result) string {
	var parts []string
	for _, r := range rs {
		if r == nil || !r.ok() || r.CPUusPerMsg == 0 {
			parts = append(parts, "-")
		} else {
			parts = append(parts, fmt.Sprintf("%.0f", r.CPUusPerMsg))
		}
	}
	return strings.Join(parts, " / ")
}

func allocs(rs ...*Result) string {
	var parts []string
	for _, r := range rs {
		if r == nil || !r.ok() || r.AllocsPerMsg == 0 {
			parts = append(parts, "-")
		} else {
			parts = append(parts, fmt.Sprintf("%.0f", r.AllocsPerMsg))
		}
	}
	return strings.Join(parts, " / ")
}

func prod(r *Result) string {
	if r == nil || !r.ok() {
		return "-"
	}
	return fmt.Sprintf("%.0f", r.ProducedPerSec)
}

func mem(r *Result) string {
	if r == nil || !r.ok() || r.PeakRSSMiB == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f / %.0f", r.PeakHeapMiB, r.PeakRSSMiB)
}

func claimLat(r *Result) string {
	if r == nil || !r.ok() || r.ClaimP50ms == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f / %.2f", r.ClaimP50ms, r.ClaimP99ms)
}

// findID returns the result with the given case id.
func (rep *Report) findID(id string) *Result {
	for i := range rep.Results {
		if rep.Results[i].ID == id {
			return &rep.Results[i]
		}
	}
	return nil
}

func (rep *Report) print(w io.Writer) {
	c := rep.Config
	fmt.Fprintf(w, "\nwharf benchmarks — %s\n", rep.Started.Format(time.RFC3339))
	for _, k := range []string{"cpu", "nproc", "memory", "go", "postgres", "mariadb", "sqlite", "load", "load_end"} {
		if v := rep.Machine[k]; v != "" {
			fmt.Fprintf(w, "  %-9s %s\n", k+":", v)
		}
	}
	fmt.Fprintf(w, "  runs:     %d per case (median shown; ±N%%: the farthest run from the median; ratios: of the medians, with the range of the per-round ratios)\n", c.Count)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }

	if has(c.Workloads, "enqueue") {
		fmt.Fprintf(w, "\nENQUEUE  msgs/s, %v per case, producers %d (SQLite 1)\n", c.EnqDuration, c.Producers)
		row("dialect", "msgs/tx", "wharf", "raw", "River", "wharf/raw", "wharf/River", "cpu µs/msg w/r/R", "allocs/msg w/r")
		for _, d := range c.Dialects {
			for _, n := range c.EnqBatches {
				wr, rr, rv := rep.find("enqueue", d, "wharf", -1, n), rep.find("enqueue", d, "raw", -1, n), rep.find("enqueue", d, "river", -1, n)
				if wr == nil && rr == nil && rv == nil {
					continue
				}
				row(d, fmt.Sprint(n), rateSpread(wr), rateSpread(rr), rateSpread(rv), ratioRange(wr, rr), ratio(wr, rv), cpus(wr, rr, rv), allocs(wr, rr))
			}
		}
		tw.Flush()
	}
	if has(c.Workloads, "drain") {
		fmt.Fprintf(w, "\nDRAIN  msgs/s over a %d-message backlog, no-op handler, batch %d; River: one client, MaxWorkers %d\n", c.Backlog, c.Batch, c.RiverWorkers)
		diags := rep.diagnostics("drain")
		head := []string{"dialect", "workers", "wharf", "raw", "River", "wharf/raw", "wharf/River", "claim p50/p99 ms w | r", "heap/RSS MiB", "cpu µs/msg w/r", "allocs/msg w/r"}
		for _, d := range diags {
			head = append(head, diagName[d])
		}
		row(head...)
		for _, d := range c.Dialects {
			rv := rep.find("drain", d, "river", -1, -1)
			for _, n := range c.Workers {
				wr, rr := rep.find("drain", d, "wharf", n, -1), rep.find("drain", d, "raw", n, -1)
				cells := []string{d, fmt.Sprint(n), rateSpread(wr), rateSpread(rr), rate(rv), ratioRange(wr, rr), ratio(wr, rv), claimLat(wr) + " | " + claimLat(rr), mem(wr), cpus(wr, rr), allocs(wr, rr)}
				any := wr != nil || rr != nil
				for _, dg := range diags {
					x := rep.find("drain", d, dg, n, -1)
					any = any || x != nil
					cells = append(cells, rate(x))
				}
				if any {
					row(cells...)
				}
			}
			if rv != nil {
				cells := []string{d, "River", "", "", rateSpread(rv), "", "", "", mem(rv), cpus(rv), ""}
				for range diags {
					cells = append(cells, "")
				}
				row(cells...)
			}
		}
		tw.Flush()
		fmt.Fprintln(w, "  workers: wharf runs that many relays (each BatchSize = batch, Concurrency = 2×batch), raw that many claim/complete loops")
		fmt.Fprintln(w, "  claim p50/p99: latency of the relays' Claim calls; heap/RSS: peak HeapInuse (sampled every 50ms) / peak RSS (VmHWM) of the process that drained")
		fmt.Fprintln(w, "  cpu µs/msg, allocs/msg: the benchmark process's CPU time and heap allocations per message (client side; the database server's CPU is not included)")
		for _, d := range diags {
			fmt.Fprintf(w, "  %s: %s\n", diagName[d], diagHelp[d])
		}
	}
	if has(c.Workloads, "e2e") {
		fmt.Fprintf(w, "\nEND TO END  %v per case, producers %d (SQLite 1), one message per transaction, same process as the consumers; wharf: %d relay(s); raw: %d goroutines; River: MaxWorkers %d\n",
			c.E2EDuration, c.Producers, c.E2ERelays, c.E2EWorkers, c.RiverWorkers)
		row("dialect", "offered", "wharf msgs/s", "p50/p99 ms", "tx p50", "raw msgs/s", "p50/p99 ms", "River msgs/s", "p50/p99 ms", "wharf/raw", "wharf/River", "produced/s w/r/R")
		for _, d := range c.Dialects {
			for _, rt := range c.E2ERates {
				wr, rr, rv := rep.findE2E(d, "wharf", rt), rep.findE2E(d, "raw", rt), rep.findE2E(d, "river", rt)
				if wr == nil && rr == nil && rv == nil {
					continue
				}
				offered := "max"
				if rt > 0 {
					offered = fmt.Sprintf("%d/s", rt)
				}
				txp := "-"
				if wr != nil && wr.ok() {
					txp = fmt.Sprintf("%.1f", wr.TxP50ms)
				}
				cells := []string{d, offered, rate(wr), lat(wr), txp, rate(rr), lat(rr), rate(rv), lat(rv), ratio(wr, rr), ratio(wr, rv),
					prod(wr) + " / " + prod(rr) + " / " + prod(rv)}
				if s := rep.findE2E(d, "wharf-serial", rt); s != nil {
					cells = append(cells, "serial proto: "+rate(s)+" "+lat(s))
				}
				row(cells...)
			}
		}
		tw.Flush()
		fmt.Fprintln(w, "  latency: enqueue (just before the producer's transaction) → handler call; tx p50: the producer's transaction alone (wharf);")
		fmt.Fprintln(w, "  both wake their consumers after this process's commits")
		fmt.Fprintln(w, "  (raw: a channel; wharf: the outbox's Notifications), PostgreSQL also on LISTEN/NOTIFY. offered max: producers as fast as they go;")
		fmt.Fprintln(w, "  where delivery falls behind production a backlog builds and the latency is its age. produced/s: wharf / raw / River")
	}
	if has(c.Workloads, "slow") {
		fmt.Fprintf(w, "\nSLOW HANDLER  one relay with the default options (BatchSize 100, Concurrency 200, PollInterval 500ms) drains %d messages; the handler sleeps %v\n", c.SlowBacklog, c.SlowHandler)
		row("dialect", "msgs/s", "Concurrency/latency", "of that", "no-op drain, 1 relay", "cpu µs/msg")
		for _, d := range c.Dialects {
			sr := rep.findID(fmt.Sprintf("slow/%s/wharf/delay=%v", d, c.SlowHandler))
			if sr == nil {
				continue
			}
			ideal := float64(relay.DefaultBatchSize*2) / c.SlowHandler.Seconds()
			of := "-"
			if sr.ok() {
				of = fmt.Sprintf("%.2f", sr.MsgsPerSec/ideal)
			}
			row(d, rateSpread(sr), fmt.Sprintf("%.0f", ideal), of, rate(rep.find("drain", d, "wharf", 1, -1)), cpus(sr))
		}
		tw.Flush()
	}
	if has(c.Workloads, "keyed") {
		fmt.Fprintf(w, "\nKEYED ORDER  %d keys × %d messages, %d%% of handler calls fail (retried after %v); %d relay(s) Run: the bench's options (PollInterval %v) and the defaults (500ms)\n",
			c.Keys, c.PerKey, c.FailPct, keyedRetryDelay, max(1, c.KeyedRelays), c.PollInterval)
		row("dialect", "seconds", "msgs/s", "handler calls", "seconds, defaults", "cpu µs/msg")
		secs := func(r *Result) string {
			if r == nil || !r.ok() {
				return rate(r)
			}
			return fmt.Sprintf("%.2f %s", r.Seconds, spread(r.Runs, r.Seconds))
		}
		for _, d := range c.Dialects {
			kr, dr := rep.findID(fmt.Sprintf("keyed/%s/wharf", d)), rep.findID(fmt.Sprintf("keyed/%s/defaults", d))
			if kr == nil && dr == nil {
				continue
			}
			calls := "-"
			if kr != nil {
				calls = fmt.Sprint(kr.Attempts)
			}
			row(d, secs(kr), rate(kr), calls, secs(dr), cpus(kr))
		}
		tw.Flush()
	}
	if has(c.Workloads, "scale") {
		fmt.Fprintln(w, "\nSCALE  one relay drains a backlog of N; producers (SQLite 1) enqueue one message per transaction beside N dead letters")
		row("dialect", "N", "drain msgs/s", "vs smallest", "claim p50/p99 ms", "heap/RSS MiB", "enqueue msgs/s", "vs smallest")
		for _, d := range c.Dialects {
			var d0, e0 *Result
			for _, n := range c.ScaleSizes {
				dr := rep.findID(fmt.Sprintf("scale/%s/wharf/drain/%d", d, n))
				er := rep.findID(fmt.Sprintf("scale/%s/wharf/enqueue/dead=%d", d, n))
				if dr == nil && er == nil {
					continue
				}
				if d0 == nil {
					d0, e0 = dr, er
				}
				row(d, fmt.Sprint(n), rateSpread(dr), ratio(dr, d0), claimLat(dr), mem(dr), rateSpread(er), ratio(er, e0))
			}
		}
		tw.Flush()
	}
	if has(c.Workloads, "notify") && has(c.Dialects, "postgres") {
		fmt.Fprintf(w, "\nNOTIFY  PostgreSQL, one message per transaction for %v; raw: pg_notify in the INSERT statement, coalesced after the commits (as wharf's unit of work), or none\n", c.EnqDuration)
		row("producers", "wharf", "raw in statement", "raw coalesced", "raw no notify", "cost in statement", "cost coalesced", "wharf/no notify")
		cost := func(a, b *Result) string {
			if a == nil || b == nil || !a.ok() || !b.ok() || b.MsgsPerSec == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f%%", 100*(1-a.MsgsPerSec/b.MsgsPerSec))
		}
		for _, p := range c.NotifyProducers {
			wr := rep.findID(fmt.Sprintf("notify/postgres/wharf/p=%d", p))
			ir := rep.findID(fmt.Sprintf("notify/postgres/raw-instmt/p=%d", p))
			rr := rep.findID(fmt.Sprintf("notify/postgres/raw/p=%d", p))
			nr := rep.findID(fmt.Sprintf("notify/postgres/raw-nonotify/p=%d", p))
			if wr == nil && rr == nil && nr == nil && ir == nil {
				continue
			}
			row(fmt.Sprint(p), rateSpread(wr), rateSpread(ir), rateSpread(rr), rateSpread(nr), cost(ir, nr), cost(rr, nr), ratioRange(wr, nr))
		}
		tw.Flush()
	}
	if has(c.Workloads, "idem") {
		fmt.Fprintf(w, "\nIDEMPOTENCY  requests/s for %v, producers %d (SQLite 1), one unit-of-work transaction each; replays: %d, one at a time\n", c.IdemDuration, c.Producers, replayRequests)
		row("dialect", "RunIdempotently", "bare insert", "ratio", "replay p50/p99 ms", "cpu µs/req idem/bare")
		for _, d := range c.Dialects {
			ir, br := rep.findID(fmt.Sprintf("idem/%s/wharf", d)), rep.findID(fmt.Sprintf("idem/%s/bare", d))
			if ir == nil && br == nil {
				continue
			}
			replay := "-"
			if ir != nil && ir.ok() {
				replay = fmt.Sprintf("%.2f / %.2f", ir.ReplayP50ms, ir.ReplayP99ms)
			}
			row(d, rateSpread(ir), rateSpread(br), ratioRange(ir, br), replay, cpus(ir, br))
		}
		tw.Flush()
	}

	var notes []string
	for _, r := range rep.Results {
		for _, n := range r.Notes {
			if strings.Contains(n, "retried") || strings.Contains(n, "again") {
				notes = append(notes, fmt.Sprintf("  %s: %s", r.ID, n))
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nRETRIES")
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}
	var bad []string
	for _, r := range rep.Results {
		switch {
		case r.Error != "":
			bad = append(bad, fmt.Sprintf("  FAILED %s: %s", r.ID, r.Error))
		case r.Skipped != "":
			bad = append(bad, fmt.Sprintf("  n/a    %s: %s", r.ID, r.Skipped))
		}
	}
	for _, s := range rep.Skipped {
		bad = append(bad, "  skip   "+s)
	}
	if len(bad) > 0 {
		fmt.Fprintln(w, "\nNOT MEASURED")
		for _, b := range bad {
			fmt.Fprintln(w, b)
		}
	}
	if len(rep.Goals) > 0 {
		fmt.Fprintln(w, "\nGOALS (medians)")
		for _, g := range rep.Goals {
			fmt.Fprintf(w, "  %-4s %s — %s\n", g.Status, g.Goal, g.Detail)
		}
	}
}

// evaluateGoals judges the targets from the medians. A goal whose
// figures are missing is N/A, never a pass.
func (rep *Report) evaluateGoals() {
	rep.Goals = nil
	c := rep.Config
	add := func(goal, status, detail string) { rep.Goals = append(rep.Goals, Goal{goal, status, detail}) }
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	okr := func(rs ...*Result) bool {
		for _, r := range rs {
			if r == nil || !r.ok() || r.MsgsPerSec == 0 {
				return false
			}
		}
		return true
	}
	if has(c.Workloads, "drain") {
		g := "PostgreSQL backlog drain: wharf ≥ 1.0× River"
		rv := rep.find("drain", "postgres", "river", -1, -1)
		best := rep.bestDrain("postgres", "wharf")
		if !okr(rv, best) {
			add(g, "N/A", "missing figures")
		} else {
			x := best.MsgsPerSec / rv.MsgsPerSec
			add(g, verdict(x >= 1.0), fmt.Sprintf("best wharf %.0f msgs/s (%d workers) vs River %.0f: %.2fx", best.MsgsPerSec, best.Workers, rv.MsgsPerSec, x))
		}
	}
	if has(c.Workloads, "e2e") {
		g := "PostgreSQL end to end (producers flat out): wharf ≥ 1.0× River"
		wr, rv := rep.findE2E("postgres", "wharf", 0), rep.findE2E("postgres", "river", 0)
		if !okr(wr, rv) {
			add(g, "N/A", "missing figures")
		} else {
			x := wr.MsgsPerSec / rv.MsgsPerSec
			add(g, verdict(x >= 1.0), fmt.Sprintf("wharf %.0f msgs/s vs River %.0f: %.2fx (p50 %.1f vs %.1f ms)", wr.MsgsPerSec, rv.MsgsPerSec, x, wr.P50ms, rv.P50ms))
		}
	}
	for _, d := range c.Dialects {
		if !has(c.Workloads, "drain") {
			break
		}
		g := "drain " + d + ": wharf ≥ 0.9× raw (every worker count)"
		var worst *Result
		var worstX float64
		missing := false
		for _, n := range c.Workers {
			wr, rr := rep.find("drain", d, "wharf", n, -1), rep.find("drain", d, "raw", n, -1)
			if !okr(wr, rr) {
				missing = true
				continue
			}
			if x := wr.MsgsPerSec / rr.MsgsPerSec; worst == nil || x < worstX {
				worst, worstX = wr, x
			}
		}
		switch {
		case worst == nil:
			add(g, "N/A", "missing figures")
		case missing:
			add(g, "FAIL", fmt.Sprintf("some worker counts missing or failed; worst measured %.2fx at %d workers", worstX, worst.Workers))
		default:
			add(g, verdict(worstX >= 0.9), fmt.Sprintf("worst %.2fx at %d workers", worstX, worst.Workers))
		}
	}
	for _, d := range c.Dialects {
		if !has(c.Workloads, "enqueue") {
			break
		}
		g := "enqueue " + d + ": wharf ≥ 0.9× raw (every batch)"
		var parts []string
		ok, any := true, false
		for _, n := range c.EnqBatches {
			wr, rr := rep.find("enqueue", d, "wharf", -1, n), rep.find("enqueue", d, "raw", -1, n)
			if !okr(wr, rr) {
				ok = false
				parts = append(parts, fmt.Sprintf("%d/tx missing", n))
				continue
			}
			any = true
			x := wr.MsgsPerSec / rr.MsgsPerSec
			ok = ok && x >= 0.9
			parts = append(parts, fmt.Sprintf("%d/tx %.2fx", n, x))
		}
		if !any {
			add(g, "N/A", "missing figures")
		} else {
			add(g, verdict(ok), strings.Join(parts, ", "))
		}
	}
	for _, d := range c.Dialects {
		if !has(c.Workloads, "e2e") {
			break
		}
		for _, rt := range c.E2ERates {
			if rt == 0 {
				continue
			}
			g := fmt.Sprintf("same-process wake-ups %s: enqueue→handler p50 ≤ 3 ms at %d msgs/s", d, rt)
			wr, rr := rep.findE2E(d, "wharf", rt), rep.findE2E(d, "raw", rt)
			if wr == nil || !wr.ok() {
				add(g, "N/A", "missing figures")
				continue
			}
			detail := fmt.Sprintf("p50 %.1f ms, p99 %.1f ms at %.0f msgs/s; the producer's transaction alone: p50 %.1f ms", wr.P50ms, wr.P99ms, wr.MsgsPerSec, wr.TxP50ms)
			if rr != nil && rr.ok() {
				detail += fmt.Sprintf(" (raw with the same wake-up: p50 %.1f ms)", rr.P50ms)
			}
			add(g, verdict(wr.P50ms <= 3), detail)
		}
	}
	if has(c.Workloads, "keyed") {
		var parts []string
		for _, d := range c.Dialects {
			if kr := rep.findID(fmt.Sprintf("keyed/%s/wharf", d)); kr != nil && kr.ok() {
				part := fmt.Sprintf("%s %.2f s", d, kr.Seconds)
				if dr := rep.findID(fmt.Sprintf("keyed/%s/defaults", d)); dr != nil && dr.ok() {
					part += fmt.Sprintf(" (relay defaults %.2f s)", dr.Seconds)
				}
				parts = append(parts, part)
			}
		}
		if len(parts) > 0 {
			add(fmt.Sprintf("keyed order (%d keys × %d, %d%% failures): time to deliver everything", c.Keys, c.PerKey, c.FailPct), "INFO",
				strings.Join(parts, ", ")+" (SQLite's before/after: BENCHMARKS.md)")
		}
	}
	if has(c.Workloads, "scale") && len(c.ScaleSizes) > 1 {
		lo, hi := c.ScaleSizes[0], c.ScaleSizes[len(c.ScaleSizes)-1]
		for _, d := range c.Dialects {
			g := fmt.Sprintf("scale %s: at %d ≥ 0.8× the %d figures (drain rate, claim p50, enqueue beside dead letters)", d, hi, lo)
			d0, d1 := rep.findID(fmt.Sprintf("scale/%s/wharf/drain/%d", d, lo)), rep.findID(fmt.Sprintf("scale/%s/wharf/drain/%d", d, hi))
			e0, e1 := rep.findID(fmt.Sprintf("scale/%s/wharf/enqueue/dead=%d", d, lo)), rep.findID(fmt.Sprintf("scale/%s/wharf/enqueue/dead=%d", d, hi))
			if !okr(d0, d1, e0, e1) || d1.ClaimP50ms == 0 {
				add(g, "N/A", "missing figures")
				continue
			}
			xd, xc, xe := d1.MsgsPerSec/d0.MsgsPerSec, d0.ClaimP50ms/d1.ClaimP50ms, e1.MsgsPerSec/e0.MsgsPerSec
			add(g, verdict(xd >= 0.8 && xc >= 0.8 && xe >= 0.8), fmt.Sprintf("drain %.2fx (%.0f vs %.0f msgs/s), claim p50 %.2f vs %.2f ms (%.2fx), enqueue %.2fx",
				xd, d1.MsgsPerSec, d0.MsgsPerSec, d1.ClaimP50ms, d0.ClaimP50ms, xc, xe))
		}
	}
	if has(c.Workloads, "notify") && has(c.Dialects, "postgres") {
		g := "PostgreSQL notifications: wharf ≥ 0.9× raw without pg_notify at ≥ 16 producers"
		var parts []string
		ok, any := true, false
		for _, p := range c.NotifyProducers {
			if p < 16 {
				continue
			}
			wr, nr := rep.findID(fmt.Sprintf("notify/postgres/wharf/p=%d", p)), rep.findID(fmt.Sprintf("notify/postgres/raw-nonotify/p=%d", p))
			if !okr(wr, nr) {
				ok = false
				continue
			}
			any = true
			x := wr.MsgsPerSec / nr.MsgsPerSec
			ok = ok && x >= 0.9
			parts = append(parts, fmt.Sprintf("%d producers %.2fx", p, x))
		}
		if !any {
			add(g, "N/A", "missing figures")
		} else {
			add(g, verdict(ok), strings.Join(parts, ", "))
		}
	}
	for _, d := range c.Dialects {
		if !has(c.Workloads, "idem") {
			break
		}
		g := "idempotency " + d + ": RunIdempotently ≥ 0.7× the bare insert"
		ir, br := rep.findID(fmt.Sprintf("idem/%s/wharf", d)), rep.findID(fmt.Sprintf("idem/%s/bare", d))
		if !okr(ir, br) {
			add(g, "N/A", "missing figures")
			continue
		}
		x := ir.MsgsPerSec / br.MsgsPerSec
		add(g, verdict(x >= 0.7), fmt.Sprintf("%.2fx (%.0f vs %.0f requests/s); replay p50 %.2f ms", x, ir.MsgsPerSec, br.MsgsPerSec, ir.ReplayP50ms))
	}
	{
		g := "relay peak heap ≤ 64 MiB (every drain, slow and scale case)"
		var worst *Result
		for i := range rep.Results {
			r := &rep.Results[i]
			if (r.Workload == "drain" || r.Workload == "scale" && r.Variant == "drain" || r.Workload == "slow") &&
				r.Impl == "wharf" && r.ok() && (worst == nil || r.PeakHeapMiB > worst.PeakHeapMiB) {
				worst = r
			}
		}
		if worst == nil {
			add(g, "N/A", "missing figures")
		} else {
			add(g, verdict(worst.PeakHeapMiB <= 64), fmt.Sprintf("max %.1f MiB heap in %s (RSS %.0f MiB)", worst.PeakHeapMiB, worst.ID, worst.PeakRSSMiB))
		}
	}
}

func (rep *Report) bestDrain(dialect, impl string) *Result {
	var best *Result
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.Workload == "drain" && r.Dialect == dialect && r.Impl == impl && r.ok() && (best == nil || r.MsgsPerSec > best.MsgsPerSec) {
			best = r
		}
	}
	return best
}
