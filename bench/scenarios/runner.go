package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"
)

// run starts the servers, runs every scenario on every dialect it applies
// to (one lane per dialect, in parallel or one after another) and returns
// the report.
func run(ctx context.Context, o Options) (*Report, error) {
	rep := &Report{Started: time.Now(), Command: "cd bench && go run ./scenarios " + strings.Join(os.Args[1:], " "),
		Revision: gitRevision(), Machine: machineInfo(), Options: o, Servers: map[string]string{}}
	if c := os.Getenv(commandEnv); c != "" {
		rep.Command = c
	}
	defer func() { rep.Seconds = round1(time.Since(rep.Started).Seconds()) }()

	dir, err := os.MkdirTemp("", "wharf-scenarios-")
	if err != nil {
		return rep, err
	}
	logf("relay logs and SQLite files in %s", dir)

	wantPG, wantMy := has(o.Dialects, "postgres"), has(o.Dialects, "mysql")
	srv := &servers{}
	if o.UseEnv {
		srv.pgURL, srv.myURL = os.Getenv("WHARF_TEST_POSTGRES_URL"), os.Getenv("WHARF_TEST_MYSQL_URL")
	} else if wantPG || wantMy {
		if srv, err = startServers(ctx, o.TestDB, wantPG, wantMy, o.Profile.Fsync); err != nil {
			return rep, err
		}
		defer srv.stop()
	}

	var lanes []*lane
	for _, d := range o.Dialects {
		l := &lane{dialect: d, o: o, dir: dir, own: !o.UseEnv}
		switch d {
		case "postgres":
			l.url = srv.pgURL
			if srv.pg != nil {
				l.srv = srv.pg
			}
		case "mysql":
			l.url = srv.myURL
			if srv.my != nil {
				l.srv = srv.my
			}
		}
		if d != "sqlite" && l.url == "" {
			msg := fmt.Sprintf("%s: no server (scripts/testdb.sh could not start one; with -use-env, set WHARF_TEST_%s_URL)", d, map[string]string{"postgres": "POSTGRES", "mysql": "MYSQL"}[d])
			if os.Getenv("CI") == "true" {
				return rep, fmt.Errorf("%s", msg)
			}
			logf("SKIPPING %s", msg)
			rep.Skipped = append(rep.Skipped, msg)
			continue
		}
		if d == "mysql" && o.UseEnv {
			db, err := openSQL("mysql", l.url)
			if err == nil {
				err = configureMySQL(ctx, db, false)
				db.Close()
			}
			if err != nil {
				return rep, fmt.Errorf("mysql: creating the relay user: %w", err)
			}
		}
		if l.relayURL, err = relayURLFor(d, l.url); err != nil {
			return rep, err
		}
		lanes = append(lanes, l)
	}

	var mu sync.Mutex
	runLane := func(l *lane) {
		for _, s := range o.Scenarios {
			if ctx.Err() != nil {
				return
			}
			if !applies(s, l.dialect, l.own) {
				mu.Lock()
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("%s/%s: does not apply", l.dialect, s))
				mu.Unlock()
				continue
			}
			r := l.runScenario(ctx, s)
			mu.Lock()
			rep.Runs = append(rep.Runs, r)
			if r.Server != "" {
				rep.Servers[l.dialect] = r.Server
			}
			mu.Unlock()
			logSummary(r)
		}
	}
	if o.Profile.Parallel {
		var wg sync.WaitGroup
		for _, l := range lanes {
			wg.Add(1)
			go func() { defer wg.Done(); runLane(l) }()
		}
		wg.Wait()
	} else {
		for _, l := range lanes {
			runLane(l)
		}
	}
	sortRuns(rep)
	rep.Machine["load_end"] = loadavg()
	failed := false
	for _, r := range rep.Runs {
		failed = failed || r.Error != ""
	}
	if !failed && ctx.Err() == nil {
		os.RemoveAll(dir)
	} else {
		logf("relay logs kept in %s", dir)
	}
	return rep, ctx.Err()
}

// logSummary prints a scenario's headline figures as it ends.
func logSummary(r *ScenarioRun) {
	if r.Error != "" {
		return
	}
	for _, s := range r.Systems {
		var parts []string
		for _, ph := range s.Phases {
			if ph.Phase == phaseDrain {
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %.0f/%.0f/s p99 %s", ph.Phase, ph.Completed, ph.Offered, fmtMs(ph.P99)))
		}
		logf("%s/%s %-5s %s | lost %d, dups %d, recovered %.0fs", r.Dialect, r.Scenario, s.System, strings.Join(parts, ", "), s.Lost+s.LeftPending, s.Duplicates, s.RecoverySeconds)
	}
}

func gitRevision() string {
	if r := os.Getenv(revisionEnv); r != "" {
		return r
	}
	out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		rev += "-dirty"
	}
	return rev
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
