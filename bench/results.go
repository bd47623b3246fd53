package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
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

	Messages   int64   `json:"messages"`
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	// Runs holds every run's msgs/s under -count > 1 (the median is kept).
	Runs []float64 `json:"runs,omitempty"`

	// e2e
	Produced       int64   `json:"produced,omitempty"`
	ProducedPerSec float64 `json:"produced_per_sec,omitempty"`
	P50ms          float64 `json:"p50_ms,omitempty"`
	P90ms          float64 `json:"p90_ms,omitempty"`
	P99ms          float64 `json:"p99_ms,omitempty"`
	MaxMs          float64 `json:"max_ms,omitempty"`

	// memory of the child process that ran the case
	PeakHeapMiB float64 `json:"peak_heap_inuse_mib,omitempty"`
	PeakRSSMiB  float64 `json:"peak_rss_mib,omitempty"`
	StartRSSMiB float64 `json:"start_rss_mib,omitempty"`

	// diagnostics
	// CPUusPerMsg is the benchmark process's CPU time (user+system) per
	// message over the timed section: the client-side cost, the database
	// server's excluded. Less disturbed by other load than msgs/s.
	CPUusPerMsg   float64  `json:"client_cpu_us_per_msg,omitempty"`
	QueriesPerMsg float64  `json:"queries_per_msg,omitempty"`
	Notes         []string `json:"notes,omitempty"`

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

func ratio(a, b *Result) string {
	if a == nil || b == nil || !a.ok() || !b.ok() || b.MsgsPerSec == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a.MsgsPerSec/b.MsgsPerSec)
}

func lat(r *Result) string {
	if r == nil || !r.ok() || r.P50ms == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f / %.1f", r.P50ms, r.P99ms)
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

func (rep *Report) print(w io.Writer) {
	c := rep.Config
	fmt.Fprintf(w, "\nwharf benchmarks — %s\n", rep.Started.Format(time.RFC3339))
	for _, k := range []string{"cpu", "nproc", "memory", "go", "postgres", "mariadb", "sqlite", "load"} {
		if v := rep.Machine[k]; v != "" {
			fmt.Fprintf(w, "  %-9s %s\n", k+":", v)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(cells ...string) { fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t") }

	if has(c.Workloads, "enqueue") {
		fmt.Fprintf(w, "\nENQUEUE  msgs/s, %v per case, producers %d (SQLite 1)\n", c.EnqDuration, c.Producers)
		row("dialect", "msgs/tx", "wharf", "raw", "River", "wharf/raw", "wharf/River", "cpu µs/msg w/r/R")
		for _, d := range c.Dialects {
			for _, n := range c.EnqBatches {
				wr, rr, rv := rep.find("enqueue", d, "wharf", -1, n), rep.find("enqueue", d, "raw", -1, n), rep.find("enqueue", d, "river", -1, n)
				if wr == nil && rr == nil && rv == nil {
					continue
				}
				row(d, fmt.Sprint(n), rate(wr), rate(rr), rate(rv), ratio(wr, rr), ratio(wr, rv), cpus(wr, rr, rv))
			}
		}
		tw.Flush()
	}
	if has(c.Workloads, "drain") {
		fmt.Fprintf(w, "\nDRAIN  msgs/s over a %d-message backlog, no-op handler, batch %d; River: one client, MaxWorkers %d\n", c.Backlog, c.Batch, c.RiverWorkers)
		diags := rep.diagnostics("drain")
		head := []string{"dialect", "workers", "wharf", "raw", "River", "wharf/raw", "wharf/River", "heap/RSS MiB", "cpu µs/msg w/r"}
		for _, d := range diags {
			head = append(head, diagName[d])
		}
		row(head...)
		for _, d := range c.Dialects {
			rv := rep.find("drain", d, "river", -1, -1)
			for _, n := range c.Workers {
				wr, rr := rep.find("drain", d, "wharf", n, -1), rep.find("drain", d, "raw", n, -1)
				cells := []string{d, fmt.Sprint(n), rate(wr), rate(rr), rate(rv), ratio(wr, rr), ratio(wr, rv), mem(wr), cpus(wr, rr)}
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
				cells := []string{d, "River", "", "", rate(rv), "", "", mem(rv), cpus(rv)}
				for range diags {
					cells = append(cells, "")
				}
				row(cells...)
			}
		}
		tw.Flush()
		fmt.Fprintln(w, "  workers: wharf runs that many relays (each BatchSize = batch, Concurrency = 2×batch), raw that many claim/complete loops")
		fmt.Fprintln(w, "  heap/RSS: peak HeapInuse (sampled every 50ms) / peak RSS (VmHWM) of the process that drained")
		fmt.Fprintln(w, "  cpu µs/msg: the benchmark process's CPU time per message (client side; the database server's is not included)")
		for _, d := range diags {
			fmt.Fprintf(w, "  %s: %s\n", diagName[d], diagHelp[d])
		}
	}
	if has(c.Workloads, "e2e") {
		fmt.Fprintf(w, "\nEND TO END  %v per case, producers %d (SQLite 1), one message per transaction; wharf: %d relay(s); raw: %d goroutines; River: MaxWorkers %d\n",
			c.E2EDuration, c.Producers, c.E2ERelays, c.E2EWorkers, c.RiverWorkers)
		row("dialect", "offered", "wharf msgs/s", "p50/p99 ms", "raw msgs/s", "p50/p99 ms", "River msgs/s", "p50/p99 ms", "wharf/raw", "wharf/River", "produced/s w/r/R")
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
				cells := []string{d, offered, rate(wr), lat(wr), rate(rr), lat(rr), rate(rv), lat(rv), ratio(wr, rr), ratio(wr, rv),
					prod(wr) + " / " + prod(rr) + " / " + prod(rv)}
				if s := rep.findE2E(d, "wharf-serial", rt); s != nil {
					cells = append(cells, "serial proto: "+rate(s)+" "+lat(s))
				}
				row(cells...)
			}
		}
		tw.Flush()
		fmt.Fprintln(w, "  latency: enqueue (just before the producer's transaction) → handler call. offered max: producers as fast as they go;")
		fmt.Fprintln(w, "  where delivery falls behind production a backlog builds and the latency is its age. produced/s: wharf / raw / River")
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
		fmt.Fprintln(w, "\nGOALS")
		for _, g := range rep.Goals {
			fmt.Fprintf(w, "  %-4s %s — %s\n", g.Status, g.Goal, g.Detail)
		}
	}
}

// evaluateGoals judges the targets from the figures. A goal whose
// figures are missing is N/A, never a pass.
func (rep *Report) evaluateGoals() {
	rep.Goals = nil
	add := func(goal, status, detail string) { rep.Goals = append(rep.Goals, Goal{goal, status, detail}) }
	verdict := func(ok bool) string {
		if ok {
			return "PASS"
		}
		return "FAIL"
	}
	// Best wharf drain on Postgres vs River.
	{
		g := "PostgreSQL backlog drain: wharf ≥ 1.0× River"
		rv := rep.find("drain", "postgres", "river", -1, -1)
		best := rep.bestDrain("postgres", "wharf")
		if rv == nil || !rv.ok() || best == nil || rv.MsgsPerSec == 0 {
			add(g, "N/A", "missing figures")
		} else {
			x := best.MsgsPerSec / rv.MsgsPerSec
			add(g, verdict(x >= 1.0), fmt.Sprintf("best wharf %.0f msgs/s (%d workers) vs River %.0f: %.2fx", best.MsgsPerSec, best.Workers, rv.MsgsPerSec, x))
		}
	}
	{
		g := "PostgreSQL end to end (producers flat out): wharf ≥ 1.0× River"
		wr, rv := rep.findE2E("postgres", "wharf", 0), rep.findE2E("postgres", "river", 0)
		if wr == nil || rv == nil || !wr.ok() || !rv.ok() || rv.MsgsPerSec == 0 {
			add(g, "N/A", "missing figures")
		} else {
			x := wr.MsgsPerSec / rv.MsgsPerSec
			add(g, verdict(x >= 1.0), fmt.Sprintf("wharf %.0f msgs/s vs River %.0f: %.2fx (p50 %.1f vs %.1f ms)", wr.MsgsPerSec, rv.MsgsPerSec, x, wr.P50ms, rv.P50ms))
		}
	}
	for _, d := range rep.Config.Dialects {
		g := "drain " + d + ": wharf ≥ 0.8× raw (every worker count)"
		var worst *Result
		var worstX float64
		missing := false
		for _, n := range rep.Config.Workers {
			wr, rr := rep.find("drain", d, "wharf", n, -1), rep.find("drain", d, "raw", n, -1)
			if wr == nil || rr == nil || !wr.ok() || !rr.ok() || rr.MsgsPerSec == 0 {
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
			add(g, verdict(worstX >= 0.8), fmt.Sprintf("worst %.2fx at %d workers", worstX, worst.Workers))
		}
	}
	for _, d := range rep.Config.Dialects {
		g := "enqueue " + d + ": wharf ≥ 0.8× raw (1 and 100 per tx)"
		var parts []string
		ok, any := true, false
		for _, n := range rep.Config.EnqBatches {
			wr, rr := rep.find("enqueue", d, "wharf", -1, n), rep.find("enqueue", d, "raw", -1, n)
			if wr == nil || rr == nil || !wr.ok() || !rr.ok() || rr.MsgsPerSec == 0 {
				ok = false
				parts = append(parts, fmt.Sprintf("%d/tx missing", n))
				continue
			}
			any = true
			x := wr.MsgsPerSec / rr.MsgsPerSec
			ok = ok && x >= 0.8
			parts = append(parts, fmt.Sprintf("%d/tx %.2fx", n, x))
		}
		if !any {
			add(g, "N/A", "missing figures")
		} else {
			add(g, verdict(ok), strings.Join(parts, ", "))
		}
	}
	{
		g := "PostgreSQL enqueue→handler p50 ≤ 10 ms (notifications)"
		var parts []string
		ok, any := true, false
		for _, rt := range rep.Config.E2ERates {
			wr := rep.findE2E("postgres", "wharf", rt)
			if wr == nil || !wr.ok() {
				continue
			}
			any = true
			ok = ok && wr.P50ms <= 10
			offered := "producers flat out"
			if rt > 0 {
				offered = fmt.Sprintf("offered %d/s", rt)
			}
			parts = append(parts, fmt.Sprintf("%s: p50 %.1f ms, p99 %.1f ms at %.0f msgs/s", offered, wr.P50ms, wr.P99ms, wr.MsgsPerSec))
		}
		if !any {
			add(g, "N/A", "missing figures")
		} else {
			add(g, verdict(ok), strings.Join(parts, "; "))
		}
	}
	{
		g := "relay peak heap ≤ 64 MiB draining the backlog"
		var worst *Result
		for i := range rep.Results {
			r := &rep.Results[i]
			if r.Workload == "drain" && r.Impl == "wharf" && r.ok() && (worst == nil || r.PeakHeapMiB > worst.PeakHeapMiB) {
				worst = r
			}
		}
		if worst == nil {
			add(g, "N/A", "missing figures")
		} else {
			add(g, verdict(worst.PeakHeapMiB <= 64), fmt.Sprintf("max %.1f MiB heap (%s, %d workers; RSS %.0f MiB), backlog %d",
				worst.PeakHeapMiB, worst.Dialect, worst.Workers, worst.PeakRSSMiB, rep.Config.Backlog))
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
