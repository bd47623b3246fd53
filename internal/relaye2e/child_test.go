package relaye2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// The child protocol: the parent sets these variables and reads lines from
// the child's stdout; closing the child's stdin asks it to stop.
const (
	envMode        = "WHARF_RELAYE2E_MODE"         // crash, drain or soak
	envDialect     = "WHARF_RELAYE2E_DIALECT"      // a dialect name
	envURL         = "WHARF_RELAYE2E_URL"          // what dialect.newDB returned
	envClockOffset = "WHARF_RELAYE2E_CLOCK_OFFSET" // added to the child's clock (time.ParseDuration)
)

// Topics of the child handlers.
const (
	topicBlock = "e2e.block" // the crash child blocks in this handler until it is killed
	topicWork  = "e2e.work"
)

// childLease is the lease of the child relays: far longer than any test, so
// a lease expires only where a test moves a clock past it.
const childLease = 30 * time.Second

// Lines a child writes.
const (
	lineReady     = "READY"     // READY: the relay is built and starts
	lineBlocked   = "BLOCKED"   // BLOCKED id attempt: a crash child's handler is blocked
	lineDelivered = "HANDLED"   // HANDLED id attempt unixnano: a handler succeeded
	lineResult    = "RESULT"    // RESULT claimed delivered retried dead abandoned released
	lineError     = "ERROR"     // ERROR text: the child failed
	childExitFail = 3           // the child's exit status on failure
	childTestFlag = "-test.run" // keeps a child from running tests if the mode were lost
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envMode); mode != "" {
		os.Exit(childMain(mode))
	}
	os.Exit(m.Run())
}

// out writes whole lines to stdout, one write each.
type out struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *out) line(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, _ = fmt.Fprintf(o.w, format+"\n", args...)
}

// childMain runs a relay in this process and returns the exit status.
func childMain(mode string) int {
	o := &out{w: os.Stdout}
	if err := runChild(mode, o); err != nil {
		o.line("%s %v", lineError, err)
		return childExitFail
	}
	return 0
}

func runChild(mode string, o *out) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Stdin closing (the parent asks us to stop, or died) cancels the relay.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	d, err := dialectNamed(os.Getenv(envDialect))
	if err != nil {
		return err
	}
	var offset time.Duration
	if v := os.Getenv(envClockOffset); v != "" {
		if offset, err = time.ParseDuration(v); err != nil {
			return fmt.Errorf("%s: %w", envClockOffset, err)
		}
	}
	now := func() time.Time { return time.Now().Add(offset) }
	drv, err := d.open(ctx, os.Getenv(envURL), wharf.Options{Now: now})
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer drv.Close()

	handled := func(_ context.Context, m ports.ClaimedMessage) error {
		o.line("%s %s %d %d", lineDelivered, m.ID, m.Attempts, time.Now().UnixNano())
		return nil
	}
	hs := relay.NewHandlers()
	opts := relay.Options{Now: now, Lease: childLease, PollInterval: 5 * time.Millisecond, MaxPollInterval: 50 * time.Millisecond}
	switch mode {
	case "crash":
		// Handles topicWork, and blocks in topicBlock until killed.
		opts.Concurrency, opts.BatchSize = 6, 10
		err = errors.Join(
			hs.Handle(topicWork, handled, relay.TopicOptions{}),
			hs.Handle(topicBlock, func(ctx context.Context, m ports.ClaimedMessage) error {
				o.line("%s %s %d", lineBlocked, m.ID, m.Attempts)
				<-ctx.Done()
				return ctx.Err()
			}, relay.TopicOptions{}),
		)
	case "drain", "soak":
		err = errors.Join(hs.Handle(topicWork, handled, relay.TopicOptions{}), hs.Handle(topicBlock, handled, relay.TopicOptions{}))
		opts.Concurrency, opts.BatchSize = 32, 100
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	counts := &counter{}
	opts.Observer = counts.observe
	r, err := relay.New(drv.Outbox(), hs, opts)
	if err != nil {
		return err
	}
	o.line(lineReady)
	var res relay.DrainResult
	if mode == "drain" {
		if res, err = r.Drain(ctx); err != nil {
			return fmt.Errorf("drain: %w", err)
		}
	} else {
		if err := r.Run(ctx); err != nil {
			return fmt.Errorf("run: %w", err)
		}
		res = counts.result()
	}
	o.line("%s %d %d %d %d %d %d", lineResult, res.Claimed, res.Delivered, res.Retried, res.DeadLettered, res.Abandoned, res.Released)
	return nil
}

// counter counts a Run's outcomes (Run returns none).
type counter struct {
	mu  sync.Mutex
	res relay.DrainResult
}

func (c *counter) observe(_ context.Context, o relay.Observation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch o.Outcome {
	case relay.OutcomeDelivered:
		c.res.Delivered++
	case relay.OutcomeRetried:
		c.res.Retried++
	case relay.OutcomeDead:
		c.res.DeadLettered++
	case relay.OutcomeAbandoned:
		c.res.Abandoned++
	case relay.OutcomeReleased:
		c.res.Released++
	}
}

func (c *counter) result() relay.DrainResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.res
	r.Claimed = r.Delivered + r.Retried + r.DeadLettered + r.Abandoned + r.Released
	return r
}

// child is a relay process seen from the parent.
type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer
	onLine func(string)

	mu    sync.Mutex
	lines []string
	sig   chan struct{} // closed and replaced on every new line
	eof   bool
	done  chan struct{} // closed when the process was waited for
	err   error         // the process's exit error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startChild starts a relay process in mode on url. onLine, when not nil,
// sees every stdout line as it arrives. The process is killed (if still
// running) when the test ends.
func startChild(t testing.TB, name, mode string, d dialect, url string, onLine func(string), env ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], childTestFlag+"=^$")
	cmd.Env = append(os.Environ(), envMode+"="+mode, envDialect+"="+d.name, envURL+"="+url)
	cmd.Env = append(cmd.Env, env...)
	c := &child{name: name, cmd: cmd, stderr: &lockedBuffer{}, onLine: onLine, sig: make(chan struct{}), done: make(chan struct{})}
	cmd.Stderr = c.stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	c.stdin, err = cmd.StdinPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start(), "start child %s", name)
	go c.read(stdout)
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("child %s stderr:\n%s", name, c.stderr.String())
		}
	})
	return c
}

func (c *child) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if c.onLine != nil {
			c.onLine(line)
		}
		c.mu.Lock()
		c.lines = append(c.lines, line)
		close(c.sig)
		c.sig = make(chan struct{})
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.eof = true
	close(c.sig)
	c.sig = make(chan struct{})
	c.mu.Unlock()
	// Wait only after every read from the pipe is done.
	c.err = c.cmd.Wait()
	close(c.done)
}

// fields returns the fields of every line starting with kind.
func (c *child) fields(kind string) [][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [][]string
	for _, l := range c.lines {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == kind {
			out = append(out, f[1:])
		}
	}
	return out
}

// await waits until n lines of kind arrived and returns their fields.
func (c *child) await(t testing.TB, kind string, n int) [][]string {
	t.Helper()
	deadline := time.NewTimer(2 * time.Minute)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		sig, eof := c.sig, c.eof
		c.mu.Unlock()
		if got := c.fields(kind); len(got) >= n {
			return got[:n]
		}
		if eof {
			require.FailNow(t, fmt.Sprintf("child %s exited before writing %d %s lines", c.name, n, kind),
				"errors: %v\nstderr:\n%s", c.fields(lineError), c.stderr.String())
		}
		select {
		case <-sig:
		case <-deadline.C:
			require.FailNow(t, fmt.Sprintf("timed out waiting for %d %s lines from child %s", n, kind, c.name))
		}
	}
}

// wait waits for the process to exit and returns its exit error.
func (c *child) wait(t testing.TB) error {
	t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(2 * time.Minute):
		require.FailNow(t, "timed out waiting for child "+c.name+" to exit")
		return nil
	}
}

// stop closes the child's stdin, which shuts its relay down gracefully, and
// requires a clean exit.
func (c *child) stop(t testing.TB) {
	t.Helper()
	require.NoError(t, c.stdin.Close())
	err := c.wait(t)
	require.NoError(t, err, "child %s: errors %v\nstderr:\n%s", c.name, c.fields(lineError), c.stderr.String())
}

// result returns the counts of the child's RESULT line.
func (c *child) result(t testing.TB) relay.DrainResult {
	t.Helper()
	f := c.await(t, lineResult, 1)[0]
	require.Len(t, f, 6)
	n := make([]int, 6)
	for i, s := range f {
		v, err := strconv.Atoi(s)
		require.NoError(t, err)
		n[i] = v
	}
	return relay.DrainResult{Claimed: n[0], Delivered: n[1], Retried: n[2], DeadLettered: n[3], Abandoned: n[4], Released: n[5]}
}

// handling is one HANDLED line.
type handling struct {
	id      string
	attempt int
	at      int64 // unix nanoseconds
}

func parseHandled(f []string) (handling, error) {
	if len(f) != 3 {
		return handling{}, fmt.Errorf("malformed %s line %q", lineDelivered, f)
	}
	attempt, err := strconv.Atoi(f[1])
	if err != nil {
		return handling{}, err
	}
	at, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return handling{}, err
	}
	return handling{id: f[0], attempt: attempt, at: at}, nil
}
