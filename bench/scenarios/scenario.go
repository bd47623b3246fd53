package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// lane runs the scenarios of one dialect, one after another.
type lane struct {
	dialect  string
	url      string // producer and admin URL ("" for SQLite: a file per scenario)
	relayURL string // relay processes' URL (their sessions are recognisable)
	srv      serverControl
	own      bool // the runner started the server
	o        Options
	dir      string // SQLite files and relay logs
}

func (l *lane) systems() []string {
	var out []string
	for _, s := range l.o.Systems {
		if s == "river" && l.dialect != "postgres" {
			continue
		}
		out = append(out, s)
	}
	return out
}

// Phase names.
const (
	phaseBaseline = "baseline"
	phaseStress   = "stress"
	phaseRecovery = "recovery"
	phaseDrain    = "drain"
)

// runScenario runs one scenario and returns its figures; a failure to
// run is recorded in ScenarioRun.Error.
func (l *lane) runScenario(ctx context.Context, name string) *ScenarioRun {
	p := l.o.Profile
	stressFor := p.Stress
	if (name == "pin" || name == "readers") && p.LongStress > 0 {
		stressFor = p.LongStress
	}
	run := &ScenarioRun{Dialect: l.dialect, Scenario: name, Stress: describe(name, l.dialect, p),
		Phases: []PhaseSpan{
			{Name: phaseBaseline, Start: 0, End: p.Baseline.Seconds()},
			{Name: phaseStress, Start: p.Baseline.Seconds(), End: (p.Baseline + stressFor).Seconds()},
			{Name: phaseRecovery, Start: (p.Baseline + stressFor).Seconds(), End: (p.Baseline + stressFor + p.Recovery).Seconds()},
		}}
	start := time.Now()
	var evMu sync.Mutex
	t0 := time.Now() // replaced when the phases start
	event := func(format string, args ...any) {
		evMu.Lock()
		defer evMu.Unlock()
		e := Event{T: round1(time.Since(t0).Seconds()), Text: fmt.Sprintf(format, args...)}
		run.Events = append(run.Events, e)
		if l.o.Verbose {
			logf("%s/%s %6.1fs %s", l.dialect, name, e.T, e.Text)
		}
	}
	err := l.scenario(ctx, run, name, stressFor, event, &t0, &evMu)
	run.Seconds = round1(time.Since(start).Seconds())
	if err != nil {
		run.Error = err.Error()
		logf("%s/%s FAILED: %v", l.dialect, name, err)
	}
	return run
}

func (l *lane) scenario(ctx context.Context, run *ScenarioRun, name string, stressFor time.Duration,
	event func(string, ...any), t0 *time.Time, evMu *sync.Mutex) error {
	p := l.o.Profile
	systems := l.systems()
	if len(systems) == 0 {
		return errors.New("no system to run")
	}
	adminURL, relayURL := l.url, l.relayURL
	var sqlitePath string
	if l.dialect == "sqlite" {
		sqlitePath = filepath.Join(l.dir, name+".db")
		for _, s := range []string{"", "-wal", "-shm"} {
			os.Remove(sqlitePath + s)
		}
		adminURL, relayURL = "file:"+sqlitePath, "file:"+sqlitePath
	}

	// Fresh tables.
	if has(systems, "wharf") {
		if err := resetWharf(ctx, l.dialect, adminURL); err != nil {
			return fmt.Errorf("reset wharf: %w", err)
		}
	}
	if has(systems, "river") {
		if err := resetRiver(ctx, adminURL); err != nil {
			return fmt.Errorf("reset river: %w", err)
		}
	}
	admin, err := openSQL(l.dialect, adminURL)
	if err != nil {
		return err
	}
	defer admin.Close()
	admin.SetMaxOpenConns(4)
	if run.Server = serverVersion(ctx, l.dialect, admin); run.Server == "" {
		return errors.New("cannot read the server version")
	}
	var smp sampler
	switch l.dialect {
	case "postgres":
		ps := &pgSampler{db: admin, systems: systems}
		if _, err := admin.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pgstattuple"); err != nil {
			ps.noTuple = true
			run.Notes = append(run.Notes, "pgstattuple is not available: "+err.Error())
		}
		ps.setupStatements(ctx)
		if ps.noStmts {
			run.Notes = append(run.Notes, "pg_stat_statements is not available (claim cost not measured): "+ps.stmtsNote)
		}
		smp = ps
	case "mysql":
		smp = &mySampler{db: admin}
	default:
		smp = &sqliteSampler{path: sqlitePath}
	}

	// Fleets and producers.
	relays := p.Relays
	if name == "crash" {
		relays = max(relays, 2)
	}
	perProc := max(1, p.Workers/relays)
	logDir := filepath.Join(l.dir, "logs", name)
	_ = os.MkdirAll(logDir, 0o755)
	type sys struct {
		name string
		tr   *tracker
		f    *fleet
		prod *producer
		sink sink
	}
	var all []*sys
	defer func() {
		for _, s := range all {
			if s.prod != nil {
				s.prod.stop()
			}
			if s.f != nil {
				s.f.stop(20 * time.Second)
			}
			if s.sink != nil {
				s.sink.close()
			}
		}
	}()
	goroutines := max(4, int(float64(p.Rate)*p.Overload/150)+1)
	if l.dialect == "sqlite" {
		goroutines = 2 // one writer at a time anyway
	}
	for _, name := range systems {
		s := &sys{name: name, tr: &tracker{}}
		all = append(all, s)
		spec := childSpec{System: name, Dialect: l.dialect, URL: relayURL, Workers: perProc, Lease: p.Lease, Poll: p.Poll, Work: p.Work}
		s.f = newFleet(name, spec, relays, s.tr, logDir, l.o.Verbose, event)
		if name == "wharf" {
			ws, err := newWharfSink(ctx, adminURL, goroutines+2)
			if err != nil {
				return err
			}
			s.sink = ws
		} else {
			rs, err := newRiverSink(ctx, adminURL, goroutines+2)
			if err != nil {
				return err
			}
			s.sink = rs
		}
		s.prod = newProducer(s.tr, s.sink, float64(p.Rate), goroutines)
	}
	for _, s := range all {
		if err := s.f.start(ctx); err != nil {
			return err
		}
	}

	env := &stressEnv{dialect: l.dialect, url: adminURL, p: p, systems: systems, srv: l.srv, event: event}
	for _, s := range all {
		env.fleets = append(env.fleets, s.f)
		env.producers = append(env.producers, s.prod)
	}
	st, err := newStress(name, env)
	if err != nil {
		return err
	}

	// The phases.
	evMu.Lock()
	*t0 = time.Now()
	evMu.Unlock()
	begin := *t0
	since := func() float64 { return time.Since(begin).Seconds() }
	for _, s := range all {
		s.prod.start(ctx)
	}
	results := make([]*SystemRun, len(all))
	for i, s := range all {
		results[i] = &SystemRun{System: s.name, Processes: relays, Workers: perProc * relays}
	}

	// DB statistics: one sample a second, in a goroutine of its own (a
	// slow or failing server must not stall the clock).
	dbCtx, stopDB := context.WithCancel(ctx)
	var dbMu sync.Mutex
	dbDone := make(chan struct{})
	go func() {
		defer close(dbDone)
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		fails := 0
		defer func() { run.DBSampleErrors = fails }()
		for {
			select {
			case <-dbCtx.Done():
				return
			case <-tk.C:
			}
			sctx, cancel := context.WithTimeout(dbCtx, 2*time.Second)
			v, err := smp.sample(sctx)
			cancel()
			if err != nil {
				fails++
				continue
			}
			dbMu.Lock()
			run.DB = append(run.DB, DBPoint{T: round1(since()), Values: roundMap(v)})
			dbMu.Unlock()
		}
	}()
	defer func() { stopDB(); <-dbDone }()

	// snap takes the phase-end snapshot (pgstattuple reads the whole
	// table) in the background.
	var snapWG sync.WaitGroup
	defer snapWG.Wait()
	snap := func(phase string) {
		t := round1(since())
		snapWG.Add(1)
		go func() {
			defer snapWG.Done()
			sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			v, err := smp.snapshot(sctx)
			dbMu.Lock()
			defer dbMu.Unlock()
			if err != nil {
				run.Notes = append(run.Notes, fmt.Sprintf("%s snapshot: %v", phase, err))
				return
			}
			if len(v) > 0 {
				run.Snapshots = append(run.Snapshots, Snapshot{Phase: phase, T: t, Values: roundMap(v)})
			}
		}()
	}

	// tick records one second of every system.
	phaseAt := func(t float64) string {
		for _, ph := range run.Phases {
			if t < ph.End {
				return ph.Name
			}
		}
		return phaseDrain
	}
	tick := func() {
		t := since()
		for i, s := range all {
			ts := s.tr.tick()
			target := s.prod.target()
			if phaseAt(t-0.5) == phaseDrain {
				target = 0
			}
			results[i].Series = append(results[i].Series, Point{
				T: round1(t), Phase: phaseAt(t - 0.5), Target: target, Enqueued: float64(ts.enq), Completed: float64(ts.first),
				Duplicates: float64(ts.dups), Backlog: ts.backlog, P50: round3(ts.p50), P95: round3(ts.p95), P99: round3(ts.p99), N: ts.n,
			})
		}
	}
	endPhase := func(phase string) {
		for i, s := range all {
			h := s.tr.endPhase()
			results[i].hists = append(results[i].hists, phaseHist{phase, h})
		}
	}
	// sleepUntil ticks every second until the phase boundary.
	sleepUntil := func(end float64) error {
		for {
			next := time.Duration(float64(time.Second) * (float64(int(since())) + 1))
			if next.Seconds() > end {
				next = time.Duration(end * float64(time.Second))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Until(begin.Add(next))):
			}
			if since() >= end-0.001 {
				// close the last partial second of the phase with it
				tick()
				return nil
			}
			tick()
		}
	}

	logf("%s/%s: baseline %v, %s %v, recovery %v (%s)", l.dialect, name, p.Baseline, name, stressFor, p.Recovery, joinSystems(systems))
	if err := sleepUntil(run.Phases[0].End); err != nil {
		return err
	}
	endPhase(phaseBaseline)
	snap(phaseBaseline)
	event("stress %s starts", name)
	if err := st.start(ctx); err != nil {
		event("stress %s failed to start: %v", name, err)
		_ = st.stop(ctx)
		return fmt.Errorf("stress %s: %w", name, err)
	}
	if err := sleepUntil(run.Phases[1].End); err != nil {
		_ = st.stop(context.Background())
		return err
	}
	stopErr := make(chan error, 1)
	go func() {
		err := st.stop(context.WithoutCancel(ctx))
		event("stress %s over", name)
		stopErr <- err
	}()
	endPhase(phaseStress)
	snap(phaseStress)
	if err := sleepUntil(run.Phases[2].End); err != nil {
		return err
	}
	if err := <-stopErr; err != nil {
		dbMu.Lock()
		run.Notes = append(run.Notes, "stress stop: "+err.Error())
		dbMu.Unlock()
	}
	endPhase(phaseRecovery)
	snap(phaseRecovery)

	// Drain: the producers stop; wait until every committed message has
	// been delivered, or the drain timeout.
	for _, s := range all {
		s.prod.stop()
	}
	// Redeliveries count too: the drain also waits for the tables to hold
	// no undelivered message (a crashed relay's leases expire, River's
	// rescuer runs).
	drainEnd := since() + p.Drain.Seconds()
	for since() < drainEnd {
		left := int64(0)
		for _, s := range all {
			left += s.tr.outstanding()
		}
		if left == 0 {
			for _, s := range all {
				qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				pending, _, err := remaining(qctx, admin, s.name)
				cancel()
				if err != nil {
					pending = 1
				}
				left += pending
			}
		}
		if left == 0 {
			break
		}
		if err := sleepUntil(min(drainEnd, float64(int(since()))+1)); err != nil {
			return err
		}
	}
	if since() >= drainEnd {
		for _, s := range all {
			pending, _, _ := remaining(ctx, admin, s.name)
			event("drain timed out: %s has %d messages never delivered, %d undelivered rows in its table%s", s.name, s.tr.outstanding(), pending, riverStates(ctx, admin, s.name))
		}
	}
	tick()
	endPhase(phaseDrain)
	run.Phases = append(run.Phases, PhaseSpan{Name: phaseDrain, Start: run.Phases[2].End, End: round1(since())})
	for _, s := range all {
		s.f.stop(20 * time.Second)
	}
	stopDB()
	<-dbDone
	snapWG.Wait()

	// The reckoning.
	for i, s := range all {
		r := results[i]
		r.accounting = s.tr.account()
		r.Produced, r.Delivered, r.Duplicates = r.accounting.Produced, r.accounting.Delivered, r.accounting.Duplicates
		r.Undelivered, r.UncommittedDelivered = r.accounting.Undelivered, r.accounting.Uncommitted
		r.ProducerErrors = s.prod.errs.Load()
		r.UnexpectedExits = s.f.unexpectedExits()
		pending, dead, err := remaining(ctx, admin, s.name)
		if err != nil {
			run.Notes = append(run.Notes, fmt.Sprintf("%s: counting what is left: %v", s.name, err))
		}
		r.LeftPending, r.DeadLetters = pending, dead
		r.Lost = max(0, r.Undelivered-r.LeftPending)
		r.StressEvents = st.events()
		r.DuplicateBound = dupBound(name, r.StressEvents, p, relays)
		summarize(run, r, p)
	}
	run.Systems = results
	evaluate(run, p)
	return nil
}

// dupBound is the most duplicates a scenario may cause: the messages in
// flight (handlers running, completions not yet written) at every kill,
// killed connection round or restart; none elsewhere.
func dupBound(scenario string, events int64, p Profile, relays int) int64 {
	switch scenario {
	case "crash":
		return events * int64(p.Workers/relays+defaultBatch)
	case "killconns", "restart":
		return events * int64(p.Workers+relays*defaultBatch)
	}
	return 0
}

// defaultBatch is the relay's default claim batch (relay.DefaultBatchSize),
// which also bounds the completions waiting to be written.
const defaultBatch = 100

// relayURLFor returns the URL of the relay processes: PostgreSQL sessions
// carry appWharf as their application_name, MariaDB sessions use the relay
// user.
func relayURLFor(dialect, raw string) (string, error) {
	if dialect == "sqlite" {
		return raw, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	switch dialect {
	case "postgres":
		q := u.Query()
		q.Set("application_name", appWharf)
		u.RawQuery = q.Encode()
	case "mysql":
		u.User = url.UserPassword(myRelayUser, myRelayUser)
	}
	return u.String(), nil
}

func joinSystems(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " beside "
		}
		out += x
	}
	return out
}
