package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

// revisionEnv carries the revision a -rev run measures into the run, and
// commandEnv the command as it was typed.
const (
	revisionEnv = "WHARF_SCENARIOS_REVISION"
	commandEnv  = "WHARF_SCENARIOS_COMMAND"
)

// runAtRevision runs the scenarios against wharf's library at rev: the
// revision is extracted with git archive into a temporary directory, this
// working tree's bench module (the runner) is copied over its bench/, and
// `go run ./scenarios` runs there with the same flags; the report goes to
// the paths given here. The runner must compile against that revision's
// API.
func runAtRevision(rev string, o Options) int {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return fail("-rev: not in a git work tree: %v", err)
	}
	root := strings.TrimSpace(string(top))
	full, err := exec.Command("git", "-C", root, "rev-parse", "--verify", "--short=12", rev+"^{commit}").Output()
	if err != nil {
		return fail("-rev %q: not a commit of this repository", rev)
	}
	short := strings.TrimSpace(string(full))
	benchDir, err := os.Getwd()
	if err != nil {
		return fail("%v", err)
	}
	tmp, err := os.MkdirTemp("", "wharf-rev-"+short+"-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(tmp)
	logf("extracting wharf at %s into %s", short, tmp)
	archive := exec.Command("bash", "-c", `git -C "$1" archive --format=tar "$2" | tar -x -C "$3"`, "archive", root, short, tmp)
	archive.Stderr = os.Stderr
	if err := archive.Run(); err != nil {
		return fail("-rev: git archive %s: %v", short, err)
	}
	dst := filepath.Join(tmp, "bench")
	if err := os.RemoveAll(dst); err != nil {
		return fail("%v", err)
	}
	src := os.DirFS(benchDir)
	if err := os.CopyFS(dst, skipResults{src}); err != nil {
		return fail("-rev: copying the runner: %v", err)
	}

	// The same flags, with the report paths made absolute.
	var args []string
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "rev", "out", "md", "testdb":
			return
		}
		args = append(args, "-"+f.Name+"="+f.Value.String())
	})
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(benchDir, p)
	}
	args = append(args, "-out="+abs(o.Out), "-testdb="+abs(o.TestDB))
	if o.Markdown != "" {
		args = append(args, "-md="+abs(o.Markdown))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := exec.CommandContext(ctx, "go", append([]string{"run", "./scenarios"}, args...)...)
	cmd.Dir = dst
	cmd.Env = append(os.Environ(), revisionEnv+"="+short+" (library; runner from the working tree)",
		commandEnv+"=cd bench && go run ./scenarios "+strings.Join(os.Args[1:], " "))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "scenarios: -rev: %v\n", err)
		return 1
	}
	return 0
}

// skipResults hides bench/results (earlier reports) from the copy.
type skipResults struct{ fs.FS }

func (s skipResults) Open(name string) (fs.File, error) {
	if name == "results" || strings.HasPrefix(name, "results/") {
		return nil, fs.ErrNotExist
	}
	return s.FS.Open(name)
}

func (s skipResults) ReadDir(name string) ([]fs.DirEntry, error) {
	entries, err := fs.ReadDir(s.FS, name)
	if name != "." {
		return entries, err
	}
	out := entries[:0]
	for _, e := range entries {
		if e.Name() != "results" {
			out = append(out, e)
		}
	}
	return out, err
}
