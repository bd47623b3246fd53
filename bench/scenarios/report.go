package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/wharf-go/wharf/bench/latency"
)

// Report is a whole run, as written to report.json.
type Report struct {
	Started  time.Time         `json:"started"`
	Seconds  float64           `json:"seconds"`
	Command  string            `json:"command"`
	Revision string            `json:"revision"`
	Machine  map[string]string `json:"machine"`
	Options  Options           `json:"options"`
	Servers  map[string]string `json:"servers"`
	Runs     []*ScenarioRun    `json:"runs"`
	Skipped  []string          `json:"skipped,omitempty"`
}

// ScenarioRun is one scenario on one dialect.
type ScenarioRun struct {
	Dialect  string       `json:"dialect"`
	Scenario string       `json:"scenario"`
	Stress   string       `json:"stress"`
	Server   string       `json:"server"`
	Seconds  float64      `json:"seconds"`
	Phases   []PhaseSpan  `json:"phases"`
	Systems  []*SystemRun `json:"systems"`
	// DB holds the database statistics sampled every second: keys
	// "<system>.<metric>" (dead_tuples, table_mib, ...) and global ones
	// (xmin_age, history_len, connections).
	DB             []DBPoint  `json:"db"`
	DBSampleErrors int        `json:"db_sample_errors,omitempty"`
	Snapshots      []Snapshot `json:"snapshots,omitempty"`
	Events         []Event    `json:"events"`
	Notes          []string   `json:"notes,omitempty"`
	Goals          []Goal     `json:"goals"`
	Plot           string     `json:"plot,omitempty"`
	Error          string     `json:"error,omitempty"`
}

// PhaseSpan is a phase's time range, in seconds from the first phase's
// start.
type PhaseSpan struct {
	Name  string  `json:"name"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}

// DBPoint is one sample of database statistics.
type DBPoint struct {
	T      float64            `json:"t"`
	Values map[string]float64 `json:"values"`
}

// Snapshot is a phase-end reading (pgstattuple, pgstatindex).
type Snapshot struct {
	Phase  string             `json:"phase"`
	T      float64            `json:"t"`
	Values map[string]float64 `json:"values"`
}

// Event is something the stress did, at T seconds.
type Event struct {
	T    float64 `json:"t"`
	Text string  `json:"text"`
}

// SystemRun is one system's figures in a scenario.
type SystemRun struct {
	System    string        `json:"system"`
	Processes int           `json:"processes"`
	Workers   int           `json:"workers"`
	Phases    []*PhaseStats `json:"phases"`
	// Produced counts committed inserts; Delivered, messages delivered at
	// least once; Undelivered, committed ones never delivered; LeftPending,
	// undelivered rows still in the table after the drain; Lost, messages
	// that were neither delivered nor left in the table.
	Produced             int64 `json:"produced"`
	Delivered            int64 `json:"delivered"`
	Undelivered          int64 `json:"undelivered"`
	LeftPending          int64 `json:"left_pending"`
	Lost                 int64 `json:"lost"`
	DeadLetters          int64 `json:"dead_letters"`
	Duplicates           int64 `json:"duplicates"`
	DuplicateBound       int64 `json:"duplicate_bound"`
	UncommittedDelivered int64 `json:"uncommitted_delivered"`
	ProducerErrors       int64 `json:"producer_errors"`
	UnexpectedExits      int   `json:"unexpected_exits"`
	StressEvents         int64 `json:"stress_events"`
	// RecoverySeconds is how long after the stress ended the per-second
	// p99 and the backlog were back to their baseline levels (for 3
	// seconds in a row); -1 when not within the recovery phase.
	RecoverySeconds float64 `json:"recovery_seconds"`
	Series          []Point `json:"series"`

	hists      []phaseHist
	accounting accounting
}

type phaseHist struct {
	phase string
	h     *latency.Histogram
}

// Point is one second of one system.
type Point struct {
	T          float64 `json:"t"`
	Phase      string  `json:"phase"`
	Target     float64 `json:"target"`
	Enqueued   float64 `json:"enqueued"`
	Completed  float64 `json:"completed"`
	Duplicates float64 `json:"duplicates,omitempty"`
	Backlog    int64   `json:"backlog"`
	P50        float64 `json:"p50_ms"`
	P95        float64 `json:"p95_ms"`
	P99        float64 `json:"p99_ms"`
	N          uint64  `json:"n"`
}

// PhaseStats sums up a phase for one system.
type PhaseStats struct {
	Phase   string  `json:"phase"`
	Seconds float64 `json:"seconds"`
	// Rates in msgs/s: the producer's target, what it inserted (offered)
	// and first deliveries (completed).
	Target    float64 `json:"target_rate"`
	Offered   float64 `json:"offered_rate"`
	Completed float64 `json:"completed_rate"`
	// Pickup latency (enqueue → handler start) of the phase's first
	// deliveries, ms.
	P50        float64 `json:"p50_ms"`
	P95        float64 `json:"p95_ms"`
	P99        float64 `json:"p99_ms"`
	Max        float64 `json:"max_ms"`
	Deliveries uint64  `json:"deliveries"`
	MaxBacklog int64   `json:"max_backlog"`
	// DBMax and DBEnd are the largest and the last database statistics of
	// the phase (this system's and the global ones).
	DBMax map[string]float64 `json:"db_max,omitempty"`
	DBEnd map[string]float64 `json:"db_end,omitempty"`
	// PostgreSQL, from pg_stat_statements over the phase: claim statements
	// run, shared buffers touched and ms spent per claim, and the backends
	// kept busy by the claims and by all of the system's statements
	// (execution time per second of wall time).
	Claims          float64 `json:"claims,omitempty"`
	BuffersPerClaim float64 `json:"buffers_per_claim,omitempty"`
	MsPerClaim      float64 `json:"ms_per_claim,omitempty"`
	ClaimBackends   float64 `json:"claim_backends,omitempty"`
	SQLBackends     float64 `json:"sql_backends,omitempty"`
}

// Goal is one of the goals, judged from the figures.
type Goal struct {
	System string `json:"system"`
	Goal   string `json:"goal"`
	Status string `json:"status"` // PASS, FAIL
	Detail string `json:"detail"`
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func roundMap(m map[string]float64) map[string]float64 {
	for k, v := range m {
		m[k] = round3(v)
	}
	return m
}

func (r *SystemRun) phase(name string) *PhaseStats {
	for _, p := range r.Phases {
		if p.Phase == name {
			return p
		}
	}
	return nil
}

// summarize computes a system's phase figures and its recovery time.
func summarize(run *ScenarioRun, r *SystemRun, p Profile) {
	for _, ph := range r.hists {
		span := run.span(ph.phase)
		st := &PhaseStats{Phase: ph.phase, Seconds: round1(span.End - span.Start),
			P50: round3(ph.h.Millis(0.5)), P95: round3(ph.h.Millis(0.95)), P99: round3(ph.h.Millis(0.99)),
			Max: round3(float64(ph.h.Max()) / 1e6), Deliveries: ph.h.Count()}
		var n, target, enq, done float64
		for _, pt := range r.Series {
			if pt.Phase != ph.phase {
				continue
			}
			n++
			target += pt.Target
			enq += pt.Enqueued
			done += pt.Completed
			st.MaxBacklog = max(st.MaxBacklog, pt.Backlog)
		}
		if secs := span.End - span.Start; secs > 0 && n > 0 {
			st.Target = round1(target / n)
			st.Offered = round1(enq / secs)
			st.Completed = round1(done / secs)
		}
		st.DBMax, st.DBEnd = map[string]float64{}, map[string]float64{}
		var first, last *DBPoint
		for i := range run.DB {
			d := &run.DB[i]
			if d.T < span.Start || d.T > span.End {
				continue
			}
			if _, ok := d.Values[r.System+".claim_calls"]; ok {
				if first == nil {
					first = d
				}
				last = d
			}
		}
		if first != nil && last != first {
			delta := func(k string) float64 { return last.Values[r.System+"."+k] - first.Values[r.System+"."+k] }
			secs := last.T - first.T
			st.Claims = delta("claim_calls")
			if st.Claims > 0 {
				st.BuffersPerClaim = round1(delta("claim_buffers") / st.Claims)
				st.MsPerClaim = round3(delta("claim_ms") / st.Claims)
			}
			st.ClaimBackends = round3(delta("claim_ms") / 1000 / secs)
			st.SQLBackends = round3(delta("sql_ms") / 1000 / secs)
		}
		for _, d := range run.DB {
			if d.T < span.Start || d.T > span.End {
				continue
			}
			for k, v := range d.Values {
				key, ok := strings.CutPrefix(k, r.System+".")
				if !ok {
					if strings.Contains(k, ".") {
						continue // another system's
					}
					key = k
				}
				if cur, seen := st.DBMax[key]; !seen || v > cur {
					st.DBMax[key] = v
				}
				st.DBEnd[key] = v
			}
		}
		r.Phases = append(r.Phases, st)
	}
	r.RecoverySeconds = recovery(run, r, p)
}

func (run *ScenarioRun) span(phase string) PhaseSpan {
	for _, s := range run.Phases {
		if s.Name == phase {
			return s
		}
	}
	return PhaseSpan{Name: phase}
}

// recovery finds the first second after the stress from which, for 3
// seconds in a row, the per-second p99 is within max(1.5 × the baseline
// p99, baseline p99 + 5ms) and the backlog within max(2 × the baseline's
// largest, a tenth of a second's rate, 10).
func recovery(run *ScenarioRun, r *SystemRun, p Profile) float64 {
	base := r.phase(phaseBaseline)
	if base == nil {
		return -1
	}
	p99Limit := max(1.5*base.P99, base.P99+5)
	backlogLimit := max(2*float64(base.MaxBacklog), float64(p.Rate)/10, 10)
	stressEnd := run.span(phaseStress).End
	var pts []Point
	for _, pt := range r.Series {
		if pt.Phase == phaseRecovery {
			pts = append(pts, pt)
		}
	}
	ok := func(pt Point) bool {
		return float64(pt.Backlog) <= backlogLimit && (pt.N == 0 || pt.P99 <= p99Limit)
	}
	for i := range pts {
		good := true
		for j := i; j < i+3; j++ {
			if j >= len(pts) || !ok(pts[j]) {
				good = false
				break
			}
		}
		if good {
			// the point at T covers the second that ends at T
			return round1(max(0, pts[i].T-1-stressEnd))
		}
	}
	return -1
}

// evaluate judges the goals for every system of a run.
func evaluate(run *ScenarioRun, p Profile) {
	add := func(sys, goal string, pass bool, format string, args ...any) {
		st := "PASS"
		if !pass {
			st = "FAIL"
		}
		run.Goals = append(run.Goals, Goal{System: sys, Goal: goal, Status: st, Detail: fmt.Sprintf(format, args...)})
	}
	var river *SystemRun
	for _, r := range run.Systems {
		if r.System == "river" {
			river = r
		}
	}
	for _, r := range run.Systems {
		add(r.System, "0 lost", r.Lost == 0 && r.LeftPending == 0,
			"%d produced, %d delivered, %d lost, %d still pending after the drain, %d dead letters", r.Produced, r.Delivered, r.Lost, r.LeftPending, r.DeadLetters)
		if r.DuplicateBound > 0 {
			add(r.System, "duplicates bounded by in-flight work", r.Duplicates <= r.DuplicateBound,
				"%d duplicates, bound %d (%d stress events × messages in flight)", r.Duplicates, r.DuplicateBound, r.StressEvents)
		} else {
			add(r.System, "no duplicates", r.Duplicates == 0, "%d duplicates", r.Duplicates)
		}
		var short []string
		for _, ph := range r.Phases {
			if ph.Phase == phaseDrain || (ph.Phase == phaseStress && (run.Scenario == "overload" || run.Scenario == "restart")) {
				continue
			}
			if ph.Offered > 0 && ph.Completed < 0.95*ph.Offered {
				short = append(short, fmt.Sprintf("%s %.0f of %.0f/s", ph.Phase, ph.Completed, ph.Offered))
			}
		}
		add(r.System, "keeps up with the offered rate (non-overload phases, ≥ 0.95×)", len(short) == 0, "%s", orNone(short, "every phase"))
		if run.Scenario == "pin" {
			b, s := r.phase(phaseBaseline), r.phase(phaseStress)
			if b != nil && s != nil {
				add(r.System, "pickup p99 under the pin ≤ 2× baseline", s.P99 <= 2*b.P99, "baseline %.1fms, pin %.1fms (%.1f×)", b.P99, s.P99, s.P99/math.Max(b.P99, 0.001))
			}
		}
		if r.RecoverySeconds >= 0 {
			add(r.System, "back to baseline within 30s of the stress", r.RecoverySeconds <= 30, "%.0fs", r.RecoverySeconds)
		} else {
			add(r.System, "back to baseline within 30s of the stress", false, "not within the %.0fs recovery phase", run.span(phaseRecovery).End-run.span(phaseRecovery).Start)
		}
		if river != nil && r.System == "wharf" {
			var worse []string
			for _, ph := range r.Phases {
				rv := river.phase(ph.Phase)
				if rv == nil || ph.Phase == phaseDrain {
					continue
				}
				// A ratio above 1 is a backlog being drained, not a better
				// phase: both are capped at 1.
				if ph.Offered > 0 && rv.Offered > 0 && math.Min(1, ph.Completed/ph.Offered) < math.Min(1, rv.Completed/rv.Offered)-0.02 {
					worse = append(worse, fmt.Sprintf("%s completion %.0f%% vs River %.0f%%", ph.Phase, 100*ph.Completed/ph.Offered, 100*rv.Completed/rv.Offered))
				}
				if ph.P99 > rv.P99 {
					worse = append(worse, fmt.Sprintf("%s p99 %.1fms vs River %.1fms", ph.Phase, ph.P99, rv.P99))
				}
			}
			if r.Lost > river.Lost || r.Duplicates > river.Duplicates {
				worse = append(worse, fmt.Sprintf("lost %d / duplicates %d vs River %d / %d", r.Lost, r.Duplicates, river.Lost, river.Duplicates))
			}
			if r.RecoverySeconds < 0 && river.RecoverySeconds >= 0 || (river.RecoverySeconds >= 0 && r.RecoverySeconds > river.RecoverySeconds) {
				worse = append(worse, fmt.Sprintf("recovery %.0fs vs River %.0fs", r.RecoverySeconds, river.RecoverySeconds))
			}
			add(r.System, "each phase metric at least as good as River's", len(worse) == 0, "%s", orNone(worse, "at least as good in every phase"))
		}
	}
}

func orNone(list []string, none string) string {
	if len(list) == 0 {
		return none
	}
	return strings.Join(list, "; ")
}

// dbHeadline is the database statistic that a scenario's table shows per
// dialect: dead tuples (PostgreSQL), history list length (MariaDB), WAL
// size (SQLite).
func dbHeadline(dialect string) (key, label string) {
	switch dialect {
	case "postgres":
		return "dead_tuples", "dead tuples"
	case "mysql":
		return "history_len", "history list"
	default:
		return "wal_mib", "WAL MiB"
	}
}

// summaryRows are the rows of the summary table.
type summaryRow struct {
	Dialect, Scenario, System           string
	Rate                                [3]string // completed/offered per phase
	P99                                 [3]string
	DB                                  string
	Table                               string
	Cost                                string // buffers per claim, baseline → stress
	Lost, Dups, Recover, Status, Anchor string
}

func summaryRows(rep *Report) []summaryRow {
	var rows []summaryRow
	for _, run := range rep.Runs {
		if run.Error != "" {
			rows = append(rows, summaryRow{Dialect: run.Dialect, Scenario: run.Scenario, System: "—", Status: "error: " + run.Error})
			continue
		}
		key, _ := dbHeadline(run.Dialect)
		for _, r := range run.Systems {
			row := summaryRow{Dialect: run.Dialect, Scenario: run.Scenario, System: r.System, Anchor: run.Dialect + "-" + run.Scenario}
			var dbMax, tableEnd float64
			for i, name := range []string{phaseBaseline, phaseStress, phaseRecovery} {
				ph := r.phase(name)
				if ph == nil {
					continue
				}
				row.Rate[i] = fmt.Sprintf("%.0f/%.0f", ph.Completed, ph.Offered)
				row.P99[i] = fmtMs(ph.P99)
				dbMax = max(dbMax, ph.DBMax[key])
				if name == phaseStress {
					tableEnd = ph.DBMax["table_mib"] + ph.DBMax["index_mib"]
					if run.Dialect == "sqlite" {
						tableEnd = ph.DBMax["db_mib"]
					}
				}
			}
			row.Cost = "—"
			if b, st := r.phase(phaseBaseline), r.phase(phaseStress); b != nil && st != nil && b.Claims > 0 && st.Claims > 0 {
				row.Cost = fmtCount(b.BuffersPerClaim) + " → " + fmtCount(st.BuffersPerClaim)
			}
			row.DB = fmtCount(dbMax)
			row.Table = fmt.Sprintf("%.1f", tableEnd)
			row.Lost = fmt.Sprint(r.Lost + r.LeftPending)
			row.Dups = fmt.Sprint(r.Duplicates)
			if r.DuplicateBound > 0 {
				row.Dups += fmt.Sprintf(" (≤%d)", r.DuplicateBound)
			}
			row.Recover = "—"
			if r.RecoverySeconds >= 0 {
				row.Recover = fmt.Sprintf("%.0f", r.RecoverySeconds)
			}
			var fails []string
			for _, g := range run.Goals {
				if g.System == r.System && g.Status == "FAIL" {
					fails = append(fails, g.Goal)
				}
			}
			row.Status = "all goals met"
			if len(fails) > 0 {
				row.Status = "missed: " + strings.Join(fails, "; ")
			}
			rows = append(rows, row)
		}
	}
	return rows
}

func fmtMs(v float64) string {
	switch {
	case v >= 10_000:
		return fmt.Sprintf("%.0fs", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.1fs", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

func fmtCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// sortRuns orders runs by dialect, then scenario, as listed in the options.
func sortRuns(rep *Report) {
	idx := func(list []string, s string) int {
		for i, x := range list {
			if x == s {
				return i
			}
		}
		return len(list)
	}
	sort.SliceStable(rep.Runs, func(i, j int) bool {
		a, b := rep.Runs[i], rep.Runs[j]
		if a.Dialect != b.Dialect {
			return idx(rep.Options.Dialects, a.Dialect) < idx(rep.Options.Dialects, b.Dialect)
		}
		return idx(allScenarios, a.Scenario) < idx(allScenarios, b.Scenario)
	})
}
