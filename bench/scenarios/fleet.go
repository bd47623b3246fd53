package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// fleet is one system's relay processes: this binary run in childArg
// mode, one process per relay. A process that exits without being told to
// (stop or kill) is restarted after a second, as a supervisor would, and
// counted.
type fleet struct {
	system  string
	spec    childSpec
	tr      *tracker
	logDir  string
	verbose bool
	event   func(format string, args ...any)

	mu         sync.Mutex
	procs      []*proc
	stopping   bool
	unexpected int
	wg         sync.WaitGroup
}

type proc struct {
	cmd    *exec.Cmd
	ready  chan struct{}
	done   chan struct{}
	killed bool // by us: a SIGKILL of the crash stress, or the final stop
	err    error
	stderr *tailBuffer
}

// tailBuffer keeps the last bytes of a process's stderr.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = t.b[len(t.b)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

func newFleet(system string, spec childSpec, n int, tr *tracker, logDir string, verbose bool, event func(string, ...any)) *fleet {
	return &fleet{system: system, spec: spec, tr: tr, logDir: logDir, verbose: verbose, event: event, procs: make([]*proc, n)}
}

// start starts every process and waits until each relays.
func (f *fleet) start(ctx context.Context) error {
	for i := range f.procs {
		if err := f.startProc(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

func (f *fleet) startProc(ctx context.Context, i int) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	spec, _ := json.Marshal(f.spec)
	cmd := exec.Command(exe, childArg)
	cmd.Env = append(os.Environ(), specEnv+"="+string(spec))
	// A relay process dies with the runner.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &proc{cmd: cmd, ready: make(chan struct{}), done: make(chan struct{}), stderr: &tailBuffer{}}
	logs := []io.Writer{p.stderr}
	var lf *os.File
	if f.logDir != "" {
		if lf, err = os.OpenFile(filepath.Join(f.logDir, fmt.Sprintf("%s-%d.log", f.system, i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err == nil {
			logs = append(logs, lf)
		}
	}
	if f.verbose {
		logs = append(logs, os.Stderr)
	}
	cmd.Stderr = io.MultiWriter(logs...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	f.mu.Lock()
	f.procs[i] = p
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		f.read(p, stdout)
		p.err = cmd.Wait()
		if lf != nil {
			lf.Close()
		}
		close(p.done)
		f.exited(i, p)
	}()
	select {
	case <-p.ready:
		return nil
	case <-p.done:
		return fmt.Errorf("%s relay process %d exited before relaying (%v): %s", f.system, i, p.err, p.stderr.String())
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		return fmt.Errorf("%s relay process %d not relaying after a minute: %s", f.system, i, p.stderr.String())
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return ctx.Err()
	}
}

// read parses the process's stdout: "R" once ready, "D seq latency_µs"
// per delivery.
func (f *fleet) read(p *proc, r io.Reader) {
	sc := bufio.NewScanner(r)
	ready := false
	for sc.Scan() {
		line := sc.Text()
		if line == "R" {
			if !ready {
				ready = true
				close(p.ready)
			}
			continue
		}
		rest, ok := strings.CutPrefix(line, "D ")
		if !ok {
			continue
		}
		a, b, _ := strings.Cut(rest, " ")
		seq, err1 := strconv.ParseInt(a, 10, 64)
		us, err2 := strconv.ParseInt(b, 10, 64)
		if err1 != nil || err2 != nil {
			seq = -1
		}
		f.tr.deliver(seq, time.Duration(us)*time.Microsecond)
	}
}

// exited restarts a process that exited on its own.
func (f *fleet) exited(i int, p *proc) {
	f.mu.Lock()
	restart := !f.stopping && !p.killed
	if restart {
		f.unexpected++
	}
	f.mu.Unlock()
	if !restart {
		return
	}
	f.event("%s relay process %d exited unexpectedly (%v); restarting it in 1s. stderr: %s", f.system, i, p.err, lastLine(p.stderr.String()))
	time.Sleep(time.Second)
	f.mu.Lock()
	stopping := f.stopping
	f.mu.Unlock()
	if stopping {
		return
	}
	if err := f.startProc(context.Background(), i); err != nil {
		f.event("%s relay process %d: restart failed: %v", f.system, i, err)
	}
}

// kill SIGKILLs process i and waits for it to be gone.
func (f *fleet) kill(i int) {
	f.mu.Lock()
	p := f.procs[i]
	if p != nil {
		p.killed = true
	}
	f.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks every process to shut down (SIGTERM: the relays finish their
// handlers and release what they hold) and kills what is left after
// timeout.
func (f *fleet) stop(timeout time.Duration) {
	f.mu.Lock()
	f.stopping = true
	procs := append([]*proc(nil), f.procs...)
	for _, p := range procs {
		if p != nil {
			p.killed = true
		}
	}
	f.mu.Unlock()
	for _, p := range procs {
		if p != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	expired := false
	for _, p := range procs {
		if p == nil {
			continue
		}
		if !expired {
			select {
			case <-p.done:
				continue
			case <-deadline.C:
				expired = true
			}
		}
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	f.wg.Wait()
}

func (f *fleet) unexpectedExits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.unexpected
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 300 {
		s = s[len(s)-300:]
	}
	return s
}
