package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// stress is what a scenario does to the system during its stress phase.
// start begins it and may return before it is over; stop ends it and
// waits until it is over.
type stress interface {
	start(ctx context.Context) error
	stop(ctx context.Context) error
	// events is what the dup bound counts: kills, kill rounds, restarts.
	events() int64
}

// serverControl restarts a database server.
type serverControl interface {
	Stop(ctx context.Context) error
	Start(ctx context.Context) error
}

// stressEnv is what stresses act on.
type stressEnv struct {
	dialect   string
	url       string
	p         Profile
	systems   []string
	fleets    []*fleet
	producers []*producer
	srv       serverControl
	event     func(format string, args ...any)
}

// stressDescriptions say what each stress does, for the report.
var stressDescriptions = map[string]map[string]string{
	"pin": {
		"postgres": "one session runs BEGIN; SELECT txid_current(); and stays idle in that transaction for the phase, pinning the MVCC horizon",
		"mysql":    "one session runs START TRANSACTION WITH CONSISTENT SNAPSHOT and reads the outbox once, then stays idle in that transaction for the phase (its read view holds back InnoDB's purge: watch the history list length)",
		"sqlite":   "one connection opens a read transaction (BEGIN; SELECT count(*)) and keeps it for the phase: checkpoints cannot recycle the write-ahead log past its snapshot",
	},
	"readers":   {"": "%d connections each open a REPEATABLE READ transaction and scan the outbox table(s) in it, every 100ms, for the phase (one snapshot per reader for the phase)"},
	"overload":  {"": "the producers offer %.1f× the rate for the phase"},
	"crash":     {"": "every %v one of the two relay processes of each system is SIGKILLed and started again %v later"},
	"restart":   {"": "a burst of %v of messages is inserted, then the database server is stopped (fast shutdown) and started again %v later, while the relays drain it"},
	"killconns": {"postgres": "%.0f time(s) a second every session of the relays (application_name) is ended with pg_terminate_backend", "mysql": "%.0f time(s) a second every session of the relays (their own user) is ended with KILL CONNECTION"},
	"pool":      {"": "%d idle connections are opened against the server and held for the phase"},
}

// applies says whether a scenario runs on a dialect.
func applies(scenario, dialect string, ownServers bool) bool {
	switch scenario {
	case "restart", "pool":
		return dialect != "sqlite" && ownServers
	case "killconns":
		return dialect != "sqlite"
	}
	return true
}

func describe(scenario, dialect string, p Profile) string {
	d := stressDescriptions[scenario]
	text := d[dialect]
	if text == "" {
		text = d[""]
	}
	switch scenario {
	case "readers":
		return fmt.Sprintf(text, p.Readers)
	case "overload":
		return fmt.Sprintf(text, p.Overload)
	case "crash":
		return fmt.Sprintf(text, p.KillEvery, p.RestartAfter)
	case "restart":
		return fmt.Sprintf(text, p.Burst, p.Down)
	case "killconns":
		return fmt.Sprintf(text, p.KillsPerSecond)
	case "pool":
		return fmt.Sprintf(text, p.IdleConns)
	}
	return text
}

func newStress(name string, env *stressEnv) (stress, error) {
	switch name {
	case "pin":
		return &pinStress{env: env}, nil
	case "readers":
		return &readersStress{env: env}, nil
	case "overload":
		return &overloadStress{env: env}, nil
	case "crash":
		return &crashStress{env: env}, nil
	case "restart":
		if env.srv == nil {
			return nil, errors.New("restart needs a server the runner started")
		}
		return &restartStress{env: env}, nil
	case "killconns":
		return &killStress{env: env}, nil
	case "pool":
		return &poolStress{env: env}, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

// pinStress holds one transaction open.
type pinStress struct {
	env  *stressEnv
	db   *sql.DB
	conn *sql.Conn
}

func (s *pinStress) start(ctx context.Context) error {
	db, err := openSQL(s.env.dialect, s.env.url)
	if err != nil {
		return err
	}
	s.db = db
	if s.conn, err = db.Conn(ctx); err != nil {
		return err
	}
	switch s.env.dialect {
	case "postgres":
		var xid int64
		if _, err := s.conn.ExecContext(ctx, "BEGIN"); err != nil {
			return err
		}
		if err := s.conn.QueryRowContext(ctx, "SELECT txid_current()").Scan(&xid); err != nil {
			return err
		}
		s.env.event("pin: transaction %d open and idle", xid)
	case "mysql":
		var n int64
		if _, err := s.conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT"); err != nil {
			return err
		}
		if err := s.conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+wharfTable).Scan(&n); err != nil {
			return err
		}
		s.env.event("pin: consistent snapshot open and idle (%d rows seen)", n)
	default:
		var n int64
		if _, err := s.conn.ExecContext(ctx, "BEGIN"); err != nil {
			return err
		}
		if err := s.conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+wharfTable).Scan(&n); err != nil {
			return err
		}
		s.env.event("pin: read transaction open and idle (%d rows seen)", n)
	}
	return nil
}

func (s *pinStress) stop(ctx context.Context) error {
	var err error
	if s.conn != nil {
		_, err = s.conn.ExecContext(ctx, "ROLLBACK")
		s.conn.Close()
		s.env.event("pin: transaction ended")
	}
	if s.db != nil {
		s.db.Close()
	}
	return err
}

func (s *pinStress) events() int64 { return 0 }

// readersStress runs REPEATABLE READ readers that keep one snapshot each
// for the phase and scan the outbox table(s) in it.
type readersStress struct {
	env    *stressEnv
	db     *sql.DB
	cancel context.CancelFunc
	wg     sync.WaitGroup
	scans  atomic.Int64
	errs   atomic.Int64
}

func (s *readersStress) start(ctx context.Context) error {
	db, err := openSQL(s.env.dialect, s.env.url)
	if err != nil {
		return err
	}
	s.db = db
	tables := []string{wharfTable}
	if has(s.env.systems, "river") {
		tables = append(tables, riverSchema+".river_job")
	}
	if !has(s.env.systems, "wharf") {
		tables = tables[1:]
	}
	var begin []string
	switch s.env.dialect {
	case "postgres":
		begin = []string{"BEGIN ISOLATION LEVEL REPEATABLE READ"}
	case "mysql":
		begin = []string{"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION WITH CONSISTENT SNAPSHOT"}
	default:
		begin = []string{"BEGIN"}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	for i := 0; i < s.env.p.Readers; i++ {
		conn, err := db.Conn(ctx)
		if err != nil {
			cancel()
			return err
		}
		for _, b := range begin {
			if _, err := conn.ExecContext(ctx, b); err != nil {
				conn.Close()
				cancel()
				return fmt.Errorf("%s: %w", b, err)
			}
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			for rctx.Err() == nil {
				for _, t := range tables {
					var n, l sql.NullInt64
					col := "length(payload)"
					if strings.HasSuffix(t, "river_job") {
						col = "attempt"
					}
					err := conn.QueryRowContext(rctx, "SELECT COUNT(*), MAX("+col+") FROM "+t).Scan(&n, &l)
					if err != nil {
						if rctx.Err() == nil {
							s.errs.Add(1)
						}
						continue
					}
					s.scans.Add(1)
				}
				select {
				case <-rctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		}()
	}
	kind := "REPEATABLE READ transactions"
	if s.env.dialect == "sqlite" {
		kind = "read transactions"
	}
	s.env.event("readers: %d %s open, scanning %s", s.env.p.Readers, kind, strings.Join(tables, " and "))
	return nil
}

func (s *readersStress) stop(context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	if s.db != nil {
		s.db.Close()
	}
	s.env.event("readers: stopped after %d scans (%d failed)", s.scans.Load(), s.errs.Load())
	return nil
}

func (s *readersStress) events() int64 { return 0 }

// overloadStress raises the producers' rate.
type overloadStress struct{ env *stressEnv }

func (s *overloadStress) start(context.Context) error {
	for _, p := range s.env.producers {
		p.setMultiplier(s.env.p.Overload)
	}
	s.env.event("overload: offered rate ×%.1f", s.env.p.Overload)
	return nil
}

func (s *overloadStress) stop(context.Context) error {
	for _, p := range s.env.producers {
		p.setMultiplier(1)
	}
	return nil
}

func (s *overloadStress) events() int64 { return 0 }

// crashStress SIGKILLs one relay process of each fleet every KillEvery
// and restarts it RestartAfter later.
type crashStress struct {
	env    *stressEnv
	cancel context.CancelFunc
	done   chan struct{}
	kills  atomic.Int64
}

func (s *crashStress) start(ctx context.Context) error {
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		for k := 0; ; k++ {
			// the first kill comes a couple of seconds into the phase
			wait := s.env.p.KillEvery
			if k == 0 {
				wait = 2 * time.Second
			}
			select {
			case <-cctx.Done():
				return
			case <-time.After(wait):
			}
			var wg sync.WaitGroup
			for _, f := range s.env.fleets {
				i := k % len(f.procs)
				wg.Add(1)
				go func() {
					defer wg.Done()
					f.kill(i)
					s.kills.Add(1)
					s.env.event("crash: %s relay process %d SIGKILLed", f.system, i)
					time.Sleep(s.env.p.RestartAfter)
					if err := f.startProc(context.WithoutCancel(cctx), i); err != nil {
						s.env.event("crash: restarting %s relay process %d failed: %v", f.system, i, err)
						return
					}
					s.env.event("crash: %s relay process %d running again", f.system, i)
				}()
			}
			wg.Wait()
		}
	}()
	return nil
}

func (s *crashStress) stop(context.Context) error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	return nil
}

// events counts kills per system.
func (s *crashStress) events() int64 { return s.kills.Load() / int64(max(1, len(s.env.fleets))) }

// restartStress inserts a burst, then stops the server and starts it again.
type restartStress struct {
	env  *stressEnv
	done chan error
}

func (s *restartStress) start(ctx context.Context) error {
	s.done = make(chan error, 1)
	go func() {
		ctx := context.WithoutCancel(ctx)
		n := int(float64(s.env.p.Rate) * s.env.p.Burst.Seconds())
		var wg sync.WaitGroup
		errs := make([]error, len(s.env.producers))
		for i, p := range s.env.producers {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = p.burst(ctx, n) }()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			s.done <- fmt.Errorf("burst: %w", err)
			return
		}
		s.env.event("restart: burst of %d messages per system inserted", n)
		time.Sleep(time.Second)
		t0 := time.Now()
		if err := s.env.srv.Stop(ctx); err != nil {
			s.done <- err
			return
		}
		s.env.event("restart: server stopped (shutdown took %.1fs)", time.Since(t0).Seconds())
		time.Sleep(s.env.p.Down)
		t1 := time.Now()
		if err := s.env.srv.Start(ctx); err != nil {
			s.done <- err
			return
		}
		s.env.event("restart: server accepting connections again (start took %.1fs, down %.1fs)", time.Since(t1).Seconds(), time.Since(t0).Seconds())
		s.done <- nil
	}()
	return nil
}

func (s *restartStress) stop(context.Context) error { return <-s.done }

func (s *restartStress) events() int64 { return 1 }

// killStress ends the relays' sessions KillsPerSecond times a second.
type killStress struct {
	env    *stressEnv
	db     *sql.DB
	cancel context.CancelFunc
	done   chan struct{}
	rounds atomic.Int64
	killed atomic.Int64
}

func (s *killStress) start(ctx context.Context) error {
	db, err := openSQL(s.env.dialect, s.env.url)
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(2)
	s.db = db
	kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel, s.done = cancel, make(chan struct{})
	period := time.Duration(float64(time.Second) / s.env.p.KillsPerSecond)
	go func() {
		defer close(s.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-kctx.Done():
				return
			case <-t.C:
			}
			n, err := s.killOnce(kctx)
			if err != nil && kctx.Err() == nil {
				s.env.event("killconns: %v", err)
				continue
			}
			s.rounds.Add(1)
			s.killed.Add(n)
		}
	}()
	return nil
}

func (s *killStress) killOnce(ctx context.Context) (int64, error) {
	if s.env.dialect == "postgres" {
		var n int64
		err := s.db.QueryRowContext(ctx, "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name IN ($1, $2) AND pid <> pg_backend_pid()", appWharf, appRiver).Scan(&n)
		return n, err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?", myRelayUser)
	if err != nil {
		return 0, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	var n int64
	for _, id := range ids {
		if _, err := s.db.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id)); err == nil {
			n++
		}
	}
	return n, nil
}

func (s *killStress) stop(context.Context) error {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	if s.db != nil {
		s.db.Close()
	}
	s.env.event("killconns: %d rounds ended %d sessions", s.rounds.Load(), s.killed.Load())
	return nil
}

func (s *killStress) events() int64 { return s.rounds.Load() }

// poolStress holds idle connections against the server.
type poolStress struct {
	env   *stressEnv
	db    *sql.DB
	conns []*sql.Conn
}

func (s *poolStress) start(ctx context.Context) error {
	db, err := openSQL(s.env.dialect, s.env.url)
	if err != nil {
		return err
	}
	n := s.env.p.IdleConns
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	s.db = db
	for i := 0; i < n; i++ {
		c, err := db.Conn(ctx)
		if err == nil {
			err = c.PingContext(ctx)
		}
		if err != nil {
			if c != nil {
				c.Close()
			}
			s.env.event("pool: the server refused connection %d: %v", i+1, err)
			break
		}
		s.conns = append(s.conns, c)
	}
	s.env.event("pool: %d idle connections held", len(s.conns))
	return nil
}

func (s *poolStress) stop(context.Context) error {
	for _, c := range s.conns {
		c.Close()
	}
	if s.db != nil {
		s.db.Close()
	}
	return nil
}

func (s *poolStress) events() int64 { return 0 }
