package main

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"
)

type target struct {
	pid     int // the server's pid when local (server.go)
	dialect string
	url     string  // server URL ("" for SQLite: a fresh file per case)
	dir     string  // SQLite: temp dir
	db      *sql.DB // parent's handle for setup, seeding, checks
	river   bool
}

// cell is one row of a table: the implementations compared in it, run in
// turn within every round so that they see the same load.
type cell []Spec

func run(ctx context.Context, c Config) (*Report, error) {
	rep := &Report{Started: time.Now(), Config: c, Command: "cd bench && go run . " + strings.Join(os.Args[1:], " "), Machine: machineInfo()}
	var only *regexp.Regexp
	if c.Only != "" {
		only = regexp.MustCompile(c.Only)
	}
	var targets []*target
	defer func() {
		for _, t := range targets {
			if t.db != nil {
				t.db.Close()
			}
			if t.dir != "" {
				os.RemoveAll(t.dir)
			}
		}
	}()
	for _, d := range c.Dialects {
		t := &target{dialect: d}
		switch d {
		case "sqlite":
			dir, err := os.MkdirTemp("", "wharf-bench-sqlite-")
			if err != nil {
				return rep, err
			}
			t.dir = dir
		case "postgres":
			t.url = os.Getenv("WHARF_TEST_POSTGRES_URL")
		case "mysql":
			t.url = os.Getenv("WHARF_TEST_MYSQL_URL")
		default:
			return rep, fmt.Errorf("unknown dialect %q", d)
		}
		if d != "sqlite" && t.url == "" {
			env := map[string]string{"postgres": "WHARF_TEST_POSTGRES_URL", "mysql": "WHARF_TEST_MYSQL_URL"}[d]
			msg := fmt.Sprintf("%s: %s is not set (run through `make bench` or scripts/testdb.sh run)", d, env)
			logf("SKIPPING %s", msg)
			rep.Skipped = append(rep.Skipped, msg)
			continue
		}
		if err := prepare(ctx, rep, t); err != nil {
			return rep, fmt.Errorf("prepare %s: %w", d, err)
		}
		targets = append(targets, t)
	}

	// want reports whether the case id of impl is selected. The paired
	// implementations of the newer workloads follow their partner: "bare"
	// (idem) runs with wharf, "raw-nonotify" (notify) with raw.
	want := func(id, impl string) bool {
		sel := impl
		switch impl {
		case "bare", "defaults":
			sel = "wharf"
		case "raw-nonotify", "raw-instmt":
			sel = "raw"
		}
		return has(c.Impls, sel) && (only == nil || only.MatchString(id))
	}
	runOnce := func(t *target, s Spec) Result {
		url, cleanup, err := reset(ctx, t, s)
		if err != nil {
			r := s.result()
			r.Error = "setup: " + err.Error()
			return r
		}
		s.URL, s.ServerPID = url, t.pid
		r := runChild(ctx, s)
		cleanup()
		return r
	}
	// runCell runs the cell's cases -count times, in turn within each round,
	// and keeps each case's median run.
	runCell := func(t *target, specs cell) {
		var sel []Spec
		for _, s := range specs {
			if want(s.ID, s.Impl) {
				s.Dialect, s.Cfg = t.dialect, c
				sel = append(sel, s)
			}
		}
		if len(sel) == 0 || ctx.Err() != nil {
			return
		}
		runs := make([][]Result, len(sel))
		failed := make([]bool, len(sel))
		for round := 0; round < c.Count && ctx.Err() == nil; round++ {
			for i, s := range sel {
				if failed[i] || ctx.Err() != nil {
					continue
				}
				r := runOnce(t, s)
				runs[i] = append(runs[i], r)
				logRun(s, r, round, c)
				failed[i] = r.Error != "" || r.Skipped != ""
			}
		}
		for i := range sel {
			if len(runs[i]) > 0 {
				rep.Results = append(rep.Results, median(runs[i]))
			}
		}
	}

	for _, w := range c.Workloads {
		for _, t := range targets {
			d := t.dialect
			switch w {
			case "enqueue":
				for _, n := range c.EnqBatches {
					var row cell
					for _, impl := range []string{"wharf", "raw", "river"} {
						if impl == "river" && !t.river {
							continue
						}
						row = append(row, Spec{ID: fmt.Sprintf("enqueue/%s/%s/%d-per-tx", d, impl, n), Workload: w, Impl: impl, MsgsPerTx: n})
					}
					runCell(t, row)
				}
			case "drain":
				for _, n := range c.Workers {
					var row cell
					for _, impl := range []string{"wharf", "raw", "wharf-outbox", "wharf-defaults", "wharf-serial", "wharf-fastcomplete"} {
						row = append(row, Spec{ID: fmt.Sprintf("drain/%s/%s/w=%d", d, impl, n), Workload: w, Impl: impl, Workers: n, Expect: c.Backlog})
					}
					runCell(t, row)
				}
				if t.river {
					runCell(t, cell{{ID: fmt.Sprintf("drain/%s/river", d), Workload: w, Impl: "river", Expect: c.Backlog}})
				}
			case "e2e":
				for _, rt := range c.E2ERates {
					var row cell
					for _, impl := range []string{"wharf", "raw", "river", "wharf-serial"} {
						if impl == "river" && !t.river {
							continue
						}
						id := fmt.Sprintf("e2e/%s/%s/max", d, impl)
						if rt > 0 {
							id = fmt.Sprintf("e2e/%s/%s/rate=%d", d, impl, rt)
						}
						row = append(row, Spec{ID: id, Workload: w, Impl: impl, Rate: rt})
					}
					runCell(t, row)
				}
			case "slow":
				runCell(t, cell{{ID: fmt.Sprintf("slow/%s/wharf/delay=%v", d, c.SlowHandler), Workload: w, Impl: "wharf",
					Workers: 1, Expect: c.SlowBacklog, Delay: c.SlowHandler}})
			case "keyed":
				runCell(t, cell{
					{ID: fmt.Sprintf("keyed/%s/wharf", d), Workload: w, Impl: "wharf", Expect: c.Keys * c.PerKey},
					{ID: fmt.Sprintf("keyed/%s/defaults", d), Workload: w, Impl: "defaults", Expect: c.Keys * c.PerKey},
				})
			case "idem":
				runCell(t, cell{
					{ID: fmt.Sprintf("idem/%s/wharf", d), Workload: w, Impl: "wharf"},
					{ID: fmt.Sprintf("idem/%s/bare", d), Workload: w, Impl: "bare"},
				})
			case "notify":
				if d != "postgres" {
					continue
				}
				for _, p := range c.NotifyProducers {
					var row cell
					for _, impl := range []string{"wharf", "raw", "raw-instmt", "raw-nonotify"} {
						row = append(row, Spec{ID: fmt.Sprintf("notify/%s/%s/p=%d", d, impl, p), Workload: w, Impl: impl, Producers: p, MsgsPerTx: 1})
					}
					runCell(t, row)
				}
			case "scale":
				for _, n := range c.ScaleSizes {
					runCell(t, cell{{ID: fmt.Sprintf("scale/%s/wharf/drain/%d", d, n), Workload: w, Impl: "wharf", Variant: "drain",
						Size: n, Workers: 1, Expect: n}})
				}
				for _, n := range c.ScaleSizes {
					runCell(t, cell{{ID: fmt.Sprintf("scale/%s/wharf/enqueue/dead=%d", d, n), Workload: w, Impl: "wharf", Variant: "enqueue",
						Size: n, MsgsPerTx: 1}})
				}
			default:
				return rep, fmt.Errorf("unknown workload %q", w)
			}
		}
	}
	rep.Machine["load_end"] = loadavg()
	return rep, ctx.Err()
}

// keyFigure is the figure that orders a case's runs: the paced end-to-end
// cases deliver the offered rate, so their latency; keyed, the time it
// took; everything else, msgs/s.
func keyFigure(r Result) float64 {
	switch {
	case r.Workload == "e2e" && r.Rate > 0:
		return r.P50ms
	case r.Workload == "keyed":
		return r.Seconds
	}
	return r.MsgsPerSec
}

// median returns the run with the median key figure, with every run's
// figures in Runs and RunsRate (round order), the highest peak heap and RSS
// of all runs, and the median client CPU and allocations per message. A
// failed run fails the case.
func median(runs []Result) Result {
	for _, r := range runs {
		if r.Error != "" || r.Skipped != "" {
			return r
		}
	}
	if len(runs) == 1 {
		return runs[0]
	}
	sorted := append([]Result(nil), runs...)
	sort.SliceStable(sorted, func(i, j int) bool { return keyFigure(sorted[i]) < keyFigure(sorted[j]) })
	m := sorted[len(sorted)/2]
	m.Runs, m.RunsRate = nil, nil
	var cpu, scpu, allocs, bytes []float64
	for _, x := range runs {
		m.Runs = append(m.Runs, round2(keyFigure(x)))
		m.RunsRate = append(m.RunsRate, math.Round(x.MsgsPerSec))
		m.PeakHeapMiB = max(m.PeakHeapMiB, x.PeakHeapMiB)
		m.PeakRSSMiB = max(m.PeakRSSMiB, x.PeakRSSMiB)
		cpu, scpu = append(cpu, x.CPUusPerMsg), append(scpu, x.ServerCPUusPerMsg)
		allocs, bytes = append(allocs, x.AllocsPerMsg), append(bytes, x.BytesPerMsg)
	}
	m.CPUusPerMsg, m.ServerCPUusPerMsg, m.AllocsPerMsg, m.BytesPerMsg = med(cpu), med(scpu), med(allocs), med(bytes)
	return m
}

func med(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func round2(x float64) float64 {
	if x >= 100 {
		return math.Round(x)
	}
	return math.Round(x*100) / 100
}

func logRun(s Spec, r Result, round int, c Config) {
	id := s.ID
	if c.Count > 1 {
		id = fmt.Sprintf("%s #%d", s.ID, round+1)
	}
	switch {
	case r.Error != "":
		logf("%-40s FAILED: %s", id, r.Error)
	case r.Skipped != "":
		logf("%-40s n/a: %s", id, r.Skipped)
	default:
		extra := ""
		if r.P50ms > 0 {
			extra += fmt.Sprintf("  p50 %.1fms p99 %.1fms (tx p50 %.1fms)", r.P50ms, r.P99ms, r.TxP50ms)
		}
		if r.ClaimP50ms > 0 {
			extra += fmt.Sprintf("  claim p50 %.2fms p99 %.2fms", r.ClaimP50ms, r.ClaimP99ms)
		}
		if r.ReplayP50ms > 0 {
			extra += fmt.Sprintf("  replay p50 %.2fms p99 %.2fms", r.ReplayP50ms, r.ReplayP99ms)
		}
		if r.PeakRSSMiB > 0 && (s.Workload == "drain" || s.Workload == "scale" || s.Workload == "slow") {
			extra += fmt.Sprintf("  heap %.1f MiB rss %.0f MiB", r.PeakHeapMiB, r.PeakRSSMiB)
		}
		if r.CPUusPerMsg > 0 {
			extra += fmt.Sprintf("  cpu %.1fµs/msg %.0f allocs %.0f B", r.CPUusPerMsg, r.AllocsPerMsg, r.BytesPerMsg)
		}
		if r.ServerCPUusPerMsg > 0 {
			extra += fmt.Sprintf("  server cpu %.1fµs/msg", r.ServerCPUusPerMsg)
		}
		if r.QueriesPerMsg > 0 {
			extra += fmt.Sprintf("  %.3f queries/msg", r.QueriesPerMsg)
		}
		logf("%-40s %9.0f msgs/s  (%d in %.2fs)%s", id, r.MsgsPerSec, r.Messages, r.Seconds, extra)
		if c.Verbose {
			for _, n := range r.Notes {
				logf("    %s", n)
			}
		}
	}
}

// prepare creates the tables on a server (SQLite gets a fresh file per
// case) and records the server version.
func prepare(ctx context.Context, rep *Report, t *target) error {
	switch t.dialect {
	case "sqlite":
		u := "file:" + filepath.Join(t.dir, "version.db")
		db, err := openRaw(ctx, "sqlite", u, 1)
		if err != nil {
			return err
		}
		var v string
		err = db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&v)
		db.Close()
		if err != nil {
			return err
		}
		rep.Machine["sqlite"] = v + " (modernc.org/sqlite, WAL, file in " + os.TempDir() + ")"
		return nil
	}
	db, err := openRaw(ctx, t.dialect, t.url, 4)
	if err != nil {
		return err
	}
	t.db = db
	t.pid = serverPID(ctx, db, t.dialect)
	var v string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return err
	}
	switch t.dialect {
	case "postgres":
		var fsync, sc string
		db.QueryRowContext(ctx, "SHOW fsync").Scan(&fsync)
		db.QueryRowContext(ctx, "SHOW synchronous_commit").Scan(&sc)
		rep.Machine["postgres"] = fmt.Sprintf("%s (fsync=%s, synchronous_commit=%s)", firstWords(v, 2), fsync, sc)
	case "mysql":
		var flush string
		db.QueryRowContext(ctx, "SELECT @@innodb_flush_log_at_trx_commit").Scan(&flush)
		rep.Machine["mariadb"] = fmt.Sprintf("%s (innodb_flush_log_at_trx_commit=%s)", v, flush)
	}
	// wharf's tables through the driver's Migrate; the raw table from the
	// same DDL; the idempotency workload's business table.
	for _, table := range []string{wharfTable, rawTable} {
		if err := migrate(ctx, t.url, table); err != nil {
			return err
		}
	}
	if err := createOrders(ctx, db, t.dialect); err != nil {
		return err
	}
	if t.dialect == "postgres" && has(rep.Config.Impls, "river") {
		msg, err := riverSetup(ctx, t.url)
		if err != nil {
			return fmt.Errorf("river setup: %w", err)
		}
		rep.Setup = append(rep.Setup, msg)
		t.river = true
	}
	return nil
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}

// seeding returns what reset puts in the table before a run of s: n
// messages of status (pending or dead).
func seeding(s Spec) (n int, status string) {
	switch {
	case s.Workload == "scale" && s.Variant == "enqueue":
		return s.Size, "dead"
	case s.Workload == "drain", s.Workload == "slow", s.Workload == "scale":
		return s.Expect, "pending"
	}
	return 0, ""
}

// reset empties the case's tables and seeds its backlog, outside the
// timing. It returns the URL the child uses.
func reset(ctx context.Context, t *target, s Spec) (string, func(), error) {
	table := wharfTable
	if strings.HasPrefix(s.Impl, "raw") {
		table = rawTable
	}
	n, status := seeding(s)
	start := time.Now()
	defer func() {
		if n > 0 {
			logf("%-40s seeded %d %s in %.1fs", s.ID, n, status, time.Since(start).Seconds())
		}
	}()
	switch {
	case t.dialect == "sqlite":
		path := filepath.Join(t.dir, strings.NewReplacer("/", "_", "=", "").Replace(s.ID)+".db")
		u := "file:" + path
		cleanup := func() {
			for _, suf := range []string{"", "-wal", "-shm"} {
				os.Remove(path + suf)
			}
		}
		cleanup() // a run before this one may have left it
		if err := migrate(ctx, u, table); err != nil {
			return "", cleanup, err
		}
		db, err := openRaw(ctx, "sqlite", u, 1)
		if err != nil {
			return "", cleanup, err
		}
		defer db.Close()
		if s.Workload == "idem" {
			if err := createOrders(ctx, db, "sqlite"); err != nil {
				return "", cleanup, err
			}
		}
		if n > 0 {
			if err := seedRows(ctx, db, "sqlite", table, n, status); err != nil {
				return "", cleanup, err
			}
			if _, err := db.ExecContext(ctx, "ANALYZE"); err != nil {
				return "", cleanup, err
			}
		}
		return u, cleanup, nil
	case s.Impl == "river":
		if err := riverTruncate(ctx, t.url); err != nil {
			return "", nil, err
		}
		if s.Expect > 0 {
			if err := riverSeed(ctx, t.url, Config{}, s.Expect); err != nil {
				return "", nil, err
			}
		}
		_, err := t.db.ExecContext(ctx, "ANALYZE "+riverSchema+".river_job")
		if err == nil {
			_, err = t.db.ExecContext(ctx, "CHECKPOINT")
		}
		return t.url, func() {}, err
	}
	tables := []string{table}
	if s.Workload == "idem" {
		tables = append(tables, idemTable, ordersTable)
	}
	for _, tb := range tables {
		trunc := "TRUNCATE " + quoteIdent(t.dialect, tb)
		if t.dialect == "mysql" {
			trunc = "TRUNCATE TABLE " + quoteIdent(t.dialect, tb)
		}
		if _, err := t.db.ExecContext(ctx, trunc); err != nil {
			return "", nil, err
		}
	}
	if n > 0 {
		if err := seedRows(ctx, t.db, t.dialect, table, n, status); err != nil {
			return "", nil, err
		}
	}
	q := quoteIdent(t.dialect, table)
	var err error
	switch t.dialect {
	case "postgres":
		if _, err = t.db.ExecContext(ctx, "ANALYZE "+q); err == nil {
			_, err = t.db.ExecContext(ctx, "CHECKPOINT")
		}
	case "mysql":
		_, err = t.db.ExecContext(ctx, "ANALYZE TABLE "+q)
	}
	return t.url, func() {}, err
}

func machineInfo() map[string]string {
	m := map[string]string{
		"nproc": fmt.Sprint(runtime.NumCPU()),
		"go":    runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH,
		"load":  loadavg(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m["cpu"] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb float64
				fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
				m["memory"] = fmt.Sprintf("%.1f GiB", kb/1024/1024)
			}
		}
	}
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
