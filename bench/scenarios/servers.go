package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// servers are the throwaway PostgreSQL and MariaDB servers of a run,
// started with scripts/testdb.sh start so that the runner can restart
// them (the database-restart scenario) and raise their connection limit
// (the pool-exhaustion scenario). stop removes them.
type servers struct {
	testdb string
	state  string // testdb.sh state directory ("" when the URLs came from the environment)
	pgURL  string
	myURL  string
	pg     *pgServer
	my     *myServer
}

// maxConnections is the servers' connection limit during a run: room for
// the pool-exhaustion scenario's idle connections beside the fleet.
const maxConnections = 500

// startServers starts the requested servers. fsync=false starts them with
// WHARF_TESTDB_FAST=1 (no fsync; a clean restart loses nothing).
func startServers(ctx context.Context, testdb string, wantPG, wantMy, fsync bool) (*servers, error) {
	s := &servers{testdb: testdb}
	args := []string{testdb, "start"}
	if wantPG {
		args = append(args, "--postgres")
	}
	if wantMy {
		args = append(args, "--mysql")
	}
	if !wantPG && !wantMy {
		return s, nil
	}
	cmd := exec.CommandContext(ctx, "bash", args...)
	// The runner must start its own servers, whatever the environment says.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WHARF_TEST_POSTGRES_URL=") && !strings.HasPrefix(kv, "WHARF_TEST_MYSQL_URL=") && !strings.HasPrefix(kv, "WHARF_TESTDB_FAST=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	fast := "1"
	if fsync {
		fast = "0"
	}
	cmd.Env = append(cmd.Env, "WHARF_TESTDB_FAST="+fast)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s start: %w", testdb, err)
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "export WHARF_TEST_POSTGRES_URL="); ok {
			s.pgURL = strings.Trim(v, "'")
		}
		if v, ok := strings.CutPrefix(line, "export WHARF_TEST_MYSQL_URL="); ok {
			s.myURL = strings.Trim(v, "'")
		}
		if v, ok := strings.CutPrefix(line, "# state in "); ok {
			s.state, _, _ = strings.Cut(v, ";")
		}
	}
	if s.state == "" {
		return nil, fmt.Errorf("%s start printed no state directory:\n%s", testdb, out.String())
	}
	if wantPG && s.pgURL != "" {
		pg, err := newPGServer(s.state, s.pgURL)
		if err != nil {
			s.stop()
			return nil, err
		}
		s.pg = pg
		if err := pg.configure(ctx); err != nil {
			s.stop()
			return nil, fmt.Errorf("postgres: %w", err)
		}
	}
	if wantMy && s.myURL != "" {
		s.my = &myServer{dir: filepath.Join(s.state, "my"), url: s.myURL}
		if err := s.my.configure(ctx); err != nil {
			s.stop()
			return nil, fmt.Errorf("mariadb: %w", err)
		}
	}
	return s, nil
}

// stop stops the servers and removes their directory.
func (s *servers) stop() {
	if s.state == "" {
		return
	}
	cmd := exec.Command("bash", s.testdb, "stop", s.state)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		logf("stopping servers in %s: %v", s.state, err)
	}
	s.state = ""
}

// pgServer controls a testdb.sh PostgreSQL server.
type pgServer struct {
	bindir, runas, data, log string
	port                     string
	url                      string
}

func newPGServer(state, rawURL string) (*pgServer, error) {
	dir := filepath.Join(state, "pg")
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return strings.TrimSpace(string(b))
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	p := &pgServer{bindir: read("bindir"), runas: read("runas"), data: filepath.Join(dir, "data"), log: filepath.Join(dir, "postgres.log"), port: u.Port(), url: rawURL}
	if p.bindir == "" {
		return nil, fmt.Errorf("postgres: no bindir in %s", dir)
	}
	return p, nil
}

// runAs runs a server tool as the server's user (postgres refuses root).
func runAs(ctx context.Context, user string, name string, args ...string) error {
	var cmd *exec.Cmd
	if user != "" && user != "root" && os.Geteuid() == 0 {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", user, "--", name}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, name, args...)
	}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (p *pgServer) ctl(ctx context.Context, args ...string) error {
	return runAs(ctx, p.runas, filepath.Join(p.bindir, "pg_ctl"), args...)
}

// Stop shuts the server down (fast mode: sessions are ended).
func (p *pgServer) Stop(ctx context.Context) error {
	return p.ctl(ctx, "stop", "-D", p.data, "-m", "fast", "-w", "-t", "120")
}

// Start starts the server again on its port.
func (p *pgServer) Start(ctx context.Context) error {
	return p.ctl(ctx, "start", "-D", p.data, "-l", p.log, "-w", "-t", "120", "-o", "-p "+p.port)
}

// configure raises max_connections and loads pg_stat_statements (the
// claim's cost per statement), then restarts the server.
func (p *pgServer) configure(ctx context.Context) error {
	db, err := sql.Open("pgx", p.url)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range []string{
		fmt.Sprintf("ALTER SYSTEM SET max_connections = %d", maxConnections),
		"ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'",
	} {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	if err := p.Stop(ctx); err != nil {
		return err
	}
	return p.Start(ctx)
}

// myServer controls a testdb.sh MariaDB server. Stop remembers the
// server's command line (from /proc) so that Start can run it again.
type myServer struct {
	dir  string
	url  string
	args []string
}

func (m *myServer) sock() string { return filepath.Join(m.dir, "mysqld.sock") }

func (m *myServer) admin(ctx context.Context, args ...string) error {
	b, err := os.ReadFile(filepath.Join(m.dir, "admin"))
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, strings.TrimSpace(string(b)), append([]string{"--no-defaults", "--socket=" + m.sock(), "-uroot", "--connect-timeout=5"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("mariadb-admin %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (m *myServer) pid() (int, error) {
	b, err := os.ReadFile(filepath.Join(m.dir, "mysqld.pid"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// Stop shuts the server down cleanly and waits for the process to exit.
func (m *myServer) Stop(ctx context.Context) error {
	pid, err := m.pid()
	if err != nil {
		return fmt.Errorf("mariadb pid: %w", err)
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return fmt.Errorf("mariadb command line: %w", err)
	}
	m.args = strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	if err := m.admin(ctx, "shutdown"); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if err := syscall.Kill(pid, 0); err != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mariadb pid %d still running 2 minutes after shutdown", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Start runs the remembered command line in a session of its own and
// waits until the server answers, then sets the connection limit again.
func (m *myServer) Start(ctx context.Context) error {
	if len(m.args) == 0 {
		return errors.New("mariadb: Start before Stop (no command line remembered)")
	}
	logf, err := os.OpenFile(filepath.Join(m.dir, "mysqld.out"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(m.args[0], m.args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	go func() { _ = cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(2 * time.Minute)
	for m.admin(ctx, "ping") != nil {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("mariadb did not answer within 2 minutes of its restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return m.configure(ctx)
}

// configure raises max_connections and creates the relay's own user, by
// which the killed-connections scenario finds the relay's sessions.
func (m *myServer) configure(ctx context.Context) error {
	db, err := openSQL("mysql", m.url)
	if err != nil {
		return err
	}
	defer db.Close()
	return configureMySQL(ctx, db, true)
}

// configureMySQL creates the relay user; with limits it also raises
// max_connections.
func configureMySQL(ctx context.Context, db *sql.DB, limits bool) error {
	stmts := []string{
		"CREATE USER IF NOT EXISTS '" + myRelayUser + "'@'127.0.0.1' IDENTIFIED BY '" + myRelayUser + "'",
		"CREATE USER IF NOT EXISTS '" + myRelayUser + "'@'localhost' IDENTIFIED BY '" + myRelayUser + "'",
		"GRANT ALL PRIVILEGES ON *.* TO '" + myRelayUser + "'@'127.0.0.1'",
		"GRANT ALL PRIVILEGES ON *.* TO '" + myRelayUser + "'@'localhost'",
	}
	if limits {
		stmts = append(stmts, fmt.Sprintf("SET GLOBAL max_connections = %d", maxConnections))
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// myRelayUser is the MariaDB user of the relay processes.
const myRelayUser = "scen_relay"
