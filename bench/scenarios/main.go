// Command scenarios runs wharf through production stresses beside River
// and writes a report (JSON, an HTML page with plots, and the summary block
// of SCENARIOS.md):
//
//	cd bench && go run ./scenarios [-profile short|long] [flags]
//
// or `make scenarios` / `make scenarios-long` from the repository root.
// Each scenario is one run of a steady producer at a fixed offered rate
// and a fleet of relay processes (separate OS processes of this binary),
// through three phases: baseline → stress → recovery, then a drain. The
// stresses (SCENARIOS.md says what each one does):
//
//	pin        a transaction held open: PostgreSQL BEGIN; SELECT txid_current();
//	           MariaDB START TRANSACTION WITH CONSISTENT SNAPSHOT; SQLite a read
//	readers    4 REPEATABLE READ connections scanning the outbox
//	overload   1.5× the offered rate
//	crash      SIGKILL one of two relay processes, restart it, repeatedly
//	restart    a burst of messages, then the database server is stopped and
//	           started again while the relays drain it
//	killconns  the relay's sessions are killed N times per second
//	pool       300 idle connections held against the server
//
// PostgreSQL runs wharf and River side by side (at the same time, each with
// its own producer and fleet, on the same server); MariaDB and SQLite run
// wharf where the stress applies. The runner starts its own throwaway
// servers with scripts/testdb.sh (it must restart them), and stops them.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Profile is the size of a run.
type Profile struct {
	Name string `json:"name"`
	// Rate is the offered rate of each system's producer (msgs/s).
	Rate int `json:"rate"`
	// Workers is each system's total handler concurrency, split evenly
	// over Relays processes.
	Workers int `json:"workers"`
	Relays  int `json:"relays"`
	// Work is the handler's work per message.
	Work  time.Duration `json:"work"`
	Lease time.Duration `json:"lease"`
	// Poll is the relays' idle poll (and River's FetchPollInterval and
	// FetchCooldown).
	Poll     time.Duration `json:"poll"`
	Baseline time.Duration `json:"baseline"`
	Stress   time.Duration `json:"stress"`
	// LongStress is the stress phase of pin and readers (the horizon
	// stresses), Stress when zero.
	LongStress time.Duration `json:"long_stress"`
	Recovery   time.Duration `json:"recovery"`
	Drain      time.Duration `json:"drain_timeout"`
	// Overload multiplies the rate in the overload stress.
	Overload float64 `json:"overload"`
	// KillEvery is the period of the crash stress's SIGKILLs; the process
	// is restarted RestartAfter later.
	KillEvery    time.Duration `json:"kill_every"`
	RestartAfter time.Duration `json:"restart_after"`
	// Down is how long the restart stress keeps the server stopped; Burst
	// is the backlog it inserts first, in seconds of the offered rate.
	Down  time.Duration `json:"down"`
	Burst time.Duration `json:"burst"`
	// KillsPerSecond is the killconns stress's rate of kill rounds.
	KillsPerSecond float64 `json:"kills_per_second"`
	IdleConns      int     `json:"idle_conns"`
	Readers        int     `json:"readers"`
	// Parallel runs the dialects at the same time (one lane each).
	Parallel bool `json:"parallel"`
	Fsync    bool `json:"fsync"`
}

var profiles = map[string]Profile{
	// short: a CI-sized run of a few minutes (dialects in parallel).
	"short": {Name: "short", Rate: 200, Workers: 32, Relays: 2, Work: time.Millisecond, Lease: 10 * time.Second,
		Poll: 50 * time.Millisecond, Baseline: 10 * time.Second, Stress: 20 * time.Second, Recovery: 20 * time.Second,
		Drain: 90 * time.Second, Overload: 1.5, KillEvery: 7 * time.Second, RestartAfter: time.Second,
		Down: 5 * time.Second, Burst: 5 * time.Second, KillsPerSecond: 1, IdleConns: 300, Readers: 4, Parallel: true},
	// long: the report's run (a 5-minute pin), dialects one after another.
	"long": {Name: "long", Rate: 800, Workers: 64, Relays: 2, Work: time.Millisecond, Lease: 30 * time.Second,
		Poll: 50 * time.Millisecond, Baseline: 60 * time.Second, Stress: 120 * time.Second, LongStress: 300 * time.Second,
		Recovery: 120 * time.Second, Drain: 180 * time.Second, Overload: 1.5, KillEvery: 30 * time.Second,
		RestartAfter: time.Second, Down: 30 * time.Second, Burst: 10 * time.Second, KillsPerSecond: 1, IdleConns: 300, Readers: 4},
}

// Options are the run's settings beyond the profile.
type Options struct {
	Profile   Profile  `json:"profile"`
	Dialects  []string `json:"dialects"`
	Scenarios []string `json:"scenarios"`
	Systems   []string `json:"systems"`
	Out       string   `json:"out"`
	Markdown  string   `json:"markdown,omitempty"`
	Format    string   `json:"format"`
	TestDB    string   `json:"testdb"`
	UseEnv    bool     `json:"use_env"`
	Verbose   bool     `json:"verbose"`
}

var allScenarios = []string{"pin", "readers", "overload", "crash", "restart", "killconns", "pool"}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		os.Exit(childMain())
	}
	os.Exit(parentMain())
}

func parentMain() int {
	var (
		o                             Options
		profile, dialects, scens, sys string
		rate, workers, relays         int
		baseline, stress, recovery    time.Duration
		parallel, from, rev           string
		fsync                         bool
	)
	flag.StringVar(&profile, "profile", "short", "short (phases of 10/20/20s, dialects in parallel, a few minutes) or long (5-minute horizon stresses, 800 msgs/s, for the report)")
	flag.StringVar(&dialects, "dialects", "postgres,mysql,sqlite", "dialects to run")
	flag.StringVar(&scens, "scenarios", strings.Join(allScenarios, ","), "scenarios to run (each runs only on the dialects it applies to)")
	flag.StringVar(&sys, "systems", "wharf,river", "systems to run (River runs on PostgreSQL only)")
	flag.IntVar(&rate, "rate", 0, "offered msgs/s of each system (0: the profile's)")
	flag.IntVar(&workers, "workers", 0, "total handler concurrency of each system (0: the profile's)")
	flag.IntVar(&relays, "relays", 0, "relay processes per system (0: the profile's; crash needs 2 and gets at least 2)")
	flag.DurationVar(&baseline, "baseline", 0, "baseline phase (0: the profile's)")
	flag.DurationVar(&stress, "stress", 0, "stress phase of every scenario (0: the profile's)")
	flag.DurationVar(&recovery, "recovery", 0, "recovery phase (0: the profile's)")
	flag.StringVar(&parallel, "parallel", "", "run the dialects at the same time: true or false (default: the profile's)")
	flag.BoolVar(&fsync, "fsync", false, "start the servers with fsync on (default off: WHARF_TESTDB_FAST=1)")
	flag.StringVar(&o.Out, "out", "../docs/scenarios", "report directory (report.json, index.html, one SVG per scenario)")
	flag.StringVar(&o.Format, "format", "svg", "plot format: svg or png")
	flag.StringVar(&o.Markdown, "md", "", "update the generated block of this Markdown file (SCENARIOS.md) with the summary")
	flag.StringVar(&o.TestDB, "testdb", "../scripts/testdb.sh", "scripts/testdb.sh, used to start (and stop) the runner's own servers")
	flag.BoolVar(&o.UseEnv, "use-env", false, "use the servers of WHARF_TEST_POSTGRES_URL / WHARF_TEST_MYSQL_URL instead of starting servers (restart and pool are then skipped: they would disturb a shared server)")
	flag.StringVar(&rev, "rev", "", "run wharf's library at this git revision (the runner itself is this working tree's): the revision is extracted with git archive into a temporary directory and the run happens there")
	flag.StringVar(&from, "from", "", "write the report (plots, HTML, -md) from this report.json instead of running")
	flag.BoolVar(&o.Verbose, "v", false, "pass the relay processes' logs through to stderr")
	flag.Parse()

	if o.Format != "svg" && o.Format != "png" {
		return fail("-format %q: use svg or png", o.Format)
	}
	p, ok := profiles[profile]
	if !ok {
		return fail("-profile %q: use short or long", profile)
	}
	if rate > 0 {
		p.Rate = rate
	}
	if workers > 0 {
		p.Workers = workers
	}
	if relays > 0 {
		p.Relays = relays
	}
	if baseline > 0 {
		p.Baseline = baseline
	}
	if stress > 0 {
		p.Stress, p.LongStress = stress, 0
	}
	if recovery > 0 {
		p.Recovery = recovery
	}
	switch parallel {
	case "":
	case "true":
		p.Parallel = true
	case "false":
		p.Parallel = false
	default:
		return fail("-parallel %q: use true or false", parallel)
	}
	p.Fsync = fsync
	if p.Workers < p.Relays {
		return fail("-workers %d is below -relays %d: every relay process needs a worker", p.Workers, p.Relays)
	}
	o.Profile = p
	o.Dialects, o.Scenarios, o.Systems = splitList(dialects), splitList(scens), splitList(sys)
	for _, d := range o.Dialects {
		if d != "postgres" && d != "mysql" && d != "sqlite" {
			return fail("-dialects: unknown dialect %q (postgres, mysql, sqlite)", d)
		}
	}
	for _, s := range o.Scenarios {
		if !has(allScenarios, s) {
			return fail("-scenarios: unknown scenario %q (%s)", s, strings.Join(allScenarios, ", "))
		}
	}
	for _, s := range o.Systems {
		if s != "wharf" && s != "river" {
			return fail("-systems: unknown system %q (wharf, river)", s)
		}
	}

	if from != "" {
		return rewrite(from, o)
	}
	if rev != "" {
		return runAtRevision(rev, o)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o)
	if rep != nil {
		if werr := writeReport(rep, o); werr != nil {
			fmt.Fprintf(os.Stderr, "scenarios: writing the report: %v\n", werr)
			if err == nil {
				err = werr
			}
		}
		printSummary(os.Stdout, rep)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "scenarios: %v\n", err)
		return 1
	}
	for _, r := range rep.Runs {
		if r.Error != "" {
			fmt.Fprintln(os.Stderr, "scenarios: some scenarios failed to run (see the report)")
			return 1
		}
	}
	return 0
}

// rewrite writes the outputs of a saved report.json again.
func rewrite(path string, o Options) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return fail("-from: %v", err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fail("-from %s: %v", path, err)
	}
	rep.Options.Out, rep.Options.Markdown, rep.Options.Format = o.Out, o.Markdown, o.Format
	if err := writeReport(&rep, rep.Options); err != nil {
		return fail("%v", err)
	}
	printSummary(os.Stdout, &rep)
	return 0
}

func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "scenarios: "+format+"\n", args...)
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

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s scenarios: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
