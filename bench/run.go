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
	dialect string
	url     string  // server URL ("" for SQLite: a fresh file per case)
	dir     string  // SQLite: temp dir
	db      *sql.DB // parent's handle for setup, seeding, checks
	river   bool
}

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

	want := func(id, impl string) bool {
		return has(c.Impls, impl) && (only == nil || only.MatchString(id))
	}
	runOnce := func(t *target, s Spec, seedN int) Result {
		url, cleanup, err := reset(ctx, t, s.Impl, s.ID, seedN)
		if err != nil {
			return Result{ID: s.ID, Workload: s.Workload, Dialect: s.Dialect, Impl: s.Impl,
				Workers: s.Workers, MsgsPerTx: s.MsgsPerTx, Rate: s.Rate, Error: "setup: " + err.Error()}
		}
		s.URL = url
		r := runChild(ctx, s)
		cleanup()
		return r
	}
	runCase := func(t *target, s Spec, seedN int) {
		if ctx.Err() != nil {
			return
		}
		s.Dialect, s.Cfg = t.dialect, c
		// -count runs: the median by msgs/s is kept; a failed run fails the
		// case.
		var runs []Result
		for i := 0; i < max(1, c.Count) && ctx.Err() == nil; i++ {
			r := runOnce(t, s, seedN)
			runs = append(runs, r)
			if r.Error != "" || r.Skipped != "" {
				break
			}
		}
		r := runs[len(runs)-1]
		if r.Error == "" && r.Skipped == "" && len(runs) > 1 {
			sorted := append([]Result(nil), runs...)
			sort.Slice(sorted, func(i, j int) bool { return sorted[i].MsgsPerSec < sorted[j].MsgsPerSec })
			r = sorted[len(sorted)/2]
			for _, x := range runs {
				r.Runs = append(r.Runs, math.Round(x.MsgsPerSec))
			}
		}
		rep.Results = append(rep.Results, r)
		switch {
		case r.Error != "":
			logf("%-34s FAILED: %s", s.ID, r.Error)
		case r.Skipped != "":
			logf("%-34s n/a: %s", s.ID, r.Skipped)
		default:
			extra := ""
			if r.P50ms > 0 {
				extra += fmt.Sprintf("  p50 %.1fms p99 %.1fms", r.P50ms, r.P99ms)
			}
			if r.PeakRSSMiB > 0 && s.Workload == "drain" {
				extra += fmt.Sprintf("  heap %.1f MiB rss %.0f MiB", r.PeakHeapMiB, r.PeakRSSMiB)
			}
			if r.CPUusPerMsg > 0 {
				extra += fmt.Sprintf("  cpu %.1fµs/msg", r.CPUusPerMsg)
			}
			if r.QueriesPerMsg > 0 {
				extra += fmt.Sprintf("  %.3f queries/msg", r.QueriesPerMsg)
			}
			if len(r.Runs) > 1 {
				extra += fmt.Sprintf("  runs %v", r.Runs)
			}
			logf("%-34s %9.0f msgs/s  (%d in %.2fs)%s", s.ID, r.MsgsPerSec, r.Messages, r.Seconds, extra)
			if c.Verbose {
				for _, n := range r.Notes {
					logf("    %s", n)
				}
			}
		}
	}

	for _, w := range c.Workloads {
		for _, t := range targets {
			d := t.dialect
			switch w {
			case "enqueue":
				for _, n := range c.EnqBatches {
					for _, impl := range []string{"wharf", "raw", "river"} {
						id := fmt.Sprintf("enqueue/%s/%s/%d-per-tx", d, impl, n)
						if (impl == "river" && !t.river) || !want(id, impl) {
							continue
						}
						runCase(t, Spec{ID: id, Workload: w, Impl: impl, MsgsPerTx: n}, 0)
					}
				}
			case "drain":
				for _, n := range c.Workers {
					for _, impl := range []string{"wharf", "raw", "wharf-outbox", "wharf-defaults", "wharf-serial", "wharf-fastcomplete"} {
						id := fmt.Sprintf("drain/%s/%s/w=%d", d, impl, n)
						if !want(id, impl) {
							continue
						}
						runCase(t, Spec{ID: id, Workload: w, Impl: impl, Workers: n, Expect: c.Backlog}, c.Backlog)
					}
				}
				if id := fmt.Sprintf("drain/%s/river", d); t.river && want(id, "river") {
					runCase(t, Spec{ID: id, Workload: w, Impl: "river", Expect: c.Backlog}, c.Backlog)
				}
			case "e2e":
				for _, rt := range c.E2ERates {
					for _, impl := range []string{"wharf", "raw", "river", "wharf-serial"} {
						id := fmt.Sprintf("e2e/%s/%s/max", d, impl)
						if rt > 0 {
							id = fmt.Sprintf("e2e/%s/%s/rate=%d", d, impl, rt)
						}
						if (impl == "river" && !t.river) || !want(id, impl) {
							continue
						}
						runCase(t, Spec{ID: id, Workload: w, Impl: impl, Rate: rt}, 0)
					}
				}
			default:
				return rep, fmt.Errorf("unknown workload %q", w)
			}
		}
	}
	rep.Machine["load_end"] = loadavg()
	return rep, ctx.Err()
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
	// wharf's table through the driver's Migrate; the raw table from the
	// same DDL.
	for _, table := range []string{wharfTable, rawTable} {
		if err := migrate(ctx, t.url, table); err != nil {
			return err
		}
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

// reset empties the case's table and seeds n messages, outside the timing.
// It returns the URL the child uses.
func reset(ctx context.Context, t *target, impl, id string, n int) (string, func(), error) {
	table := wharfTable
	if impl == "raw" {
		table = rawTable
	}
	start := time.Now()
	defer func() {
		if n > 0 {
			logf("%-34s seeded %d in %.1fs", id, n, time.Since(start).Seconds())
		}
	}()
	switch {
	case t.dialect == "sqlite":
		path := filepath.Join(t.dir, strings.NewReplacer("/", "_", "=", "").Replace(id)+".db")
		u := "file:" + path
		cleanup := func() {
			for _, suf := range []string{"", "-wal", "-shm"} {
				os.Remove(path + suf)
			}
		}
		if err := migrate(ctx, u, table); err != nil {
			return "", cleanup, err
		}
		if n > 0 {
			db, err := openRaw(ctx, "sqlite", u, 1)
			if err != nil {
				return "", cleanup, err
			}
			err = seed(ctx, db, "sqlite", table, n)
			db.Close()
			if err != nil {
				return "", cleanup, err
			}
		}
		return u, cleanup, nil
	case impl == "river":
		if err := riverTruncate(ctx, t.url); err != nil {
			return "", nil, err
		}
		if n > 0 {
			if err := riverSeed(ctx, t.url, Config{}, n); err != nil {
				return "", nil, err
			}
		}
		_, err := t.db.ExecContext(ctx, "ANALYZE "+riverSchema+".river_job")
		if err == nil {
			_, err = t.db.ExecContext(ctx, "CHECKPOINT")
		}
		return t.url, func() {}, err
	}
	q := quoteIdent(t.dialect, table)
	trunc := "TRUNCATE " + q
	if t.dialect == "mysql" {
		trunc = "TRUNCATE TABLE " + q
	}
	if _, err := t.db.ExecContext(ctx, trunc); err != nil {
		return "", nil, err
	}
	if n > 0 {
		if err := seed(ctx, t.db, t.dialect, table, n); err != nil {
			return "", nil, err
		}
	}
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
