package opse2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
)

// The child protocol: the parent sets these variables, the child prints
// READY, waits for a line on stdin, migrates and prints one result line.
const (
	envMode    = "WHARF_OPSE2E_MODE" // "migrate"
	envDialect = "WHARF_OPSE2E_DIALECT"
	envURL     = "WHARF_OPSE2E_URL"

	lineReady   = "READY"
	lineApplied = "APPLIED" // APPLIED n: the child's Migrate applied n migrations
	lineError   = "ERROR"   // ERROR text
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(envMode); mode != "" {
		os.Exit(childMain(mode))
	}
	os.Exit(m.Run())
}

func childMain(mode string) int {
	if err := runChild(mode); err != nil {
		fmt.Printf("%s %v\n", lineError, err)
		return 3
	}
	return 0
}

func runChild(mode string) error {
	if mode != "migrate" {
		return fmt.Errorf("unknown mode %q", mode)
	}
	d, ok := dialectByID(os.Getenv(envDialect))
	if !ok {
		return fmt.Errorf("unknown dialect %q", os.Getenv(envDialect))
	}
	ctx := context.Background()
	drv, err := d.open(ctx, os.Getenv(envURL), wharf.Options{})
	if err != nil {
		return err
	}
	defer drv.Close()
	fmt.Println(lineReady)
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return fmt.Errorf("wait for the start line: %w", err)
	}
	applied, err := drv.ApplyMigrations(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("%s %d\n", lineApplied, len(applied))
	return nil
}

// child is a migrating child process.
type child struct {
	cmd   *exec.Cmd
	stdin *os.File
	out   *bufio.Scanner
	buf   *lockedBuffer // stderr
}

// lockedBuffer is a bytes.Buffer safe for the writes of exec's copying
// goroutine and the test's reads.
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

// startMigrator starts a child that migrates url once told to, and waits
// for it to be ready (connected).
func startMigrator(t *testing.T, d dialect, url string) *child {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envMode+"=migrate", envDialect+"="+d.id, envURL+"="+url)
	stdinR, stdinW, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdin = stdinR
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	_ = stdinR.Close()
	t.Cleanup(func() {
		_ = stdinW.Close()
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	c := &child{cmd: cmd, stdin: stdinW, out: bufio.NewScanner(stdout), buf: stderr}
	require.True(t, c.out.Scan(), "the child exited before it was ready: %s", stderr.String())
	require.Equal(t, lineReady, c.out.Text(), "stderr: %s", stderr.String())
	return c
}

// result tells the child to go and returns its result line and exit error.
func (c *child) result(t *testing.T) (string, error) {
	t.Helper()
	done := make(chan string, 1)
	go func() {
		var lines []string
		for c.out.Scan() {
			lines = append(lines, c.out.Text())
		}
		done <- strings.Join(lines, "\n")
	}()
	select {
	case line := <-done:
		return line, c.cmd.Wait()
	case <-time.After(2 * time.Minute):
		return "", fmt.Errorf("the child did not finish within 2 minutes; stderr: %s", c.buf.String())
	}
}
