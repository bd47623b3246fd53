//go:build ignore

// testsummary reads `go test -json` on stdin and prints what plain `go test`
// would (a line per package, the output of failing tests, build errors),
// then a summary of the skipped tests grouped by their reason — so that
// `make test-sqlite` says which tests did not run for want of a database
// server. It exits 1 if a test or a build failed.
//
//	go test -json ./... | go run scripts/testsummary.go
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output events
}

// skipped is one reason for skipping and the tests it skipped.
type skipped struct {
	reason string
	tests  []string // package: test
}

// fileLine is the "file_test.go:12: " prefix of a t.Log/t.Skip line.
var fileLine = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: `)

func main() {
	failed := summarise(os.Stdin, os.Stdout)
	if failed {
		os.Exit(1)
	}
}

func summarise(in io.Reader, out io.Writer) (failed bool) {
	output := map[string][]string{} // package + " " + test → its output lines
	byReason := map[string]*skipped{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
			fmt.Fprintln(out, string(line)) // not an event: pass it through
			continue
		}
		id := ev.Package + " " + ev.Test
		switch ev.Action {
		case "build-output":
			fmt.Fprint(out, ev.Output)
		case "build-fail":
			failed = true
		case "output":
			if ev.Test == "" {
				if ev.Output != "PASS\n" && !strings.HasPrefix(ev.Output, "=== ") {
					fmt.Fprint(out, ev.Output) // "ok  pkg 1.2s", "FAIL", notices
				}
				continue
			}
			output[id] = append(output[id], ev.Output)
		case "fail":
			failed = true
			if ev.Test != "" {
				fmt.Fprint(out, strings.Join(output[id], ""))
			}
			delete(output, id)
		case "skip":
			if ev.Test != "" {
				reason := skipReason(output[id])
				s := byReason[reason]
				if s == nil {
					s = &skipped{reason: reason}
					byReason[reason] = s
				}
				s.tests = append(s.tests, shortPackage(ev.Package)+": "+ev.Test)
			}
			delete(output, id)
		case "pass":
			delete(output, id)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "testsummary: reading go test -json:", err)
		failed = true
	}
	printSkips(out, byReason)
	return failed
}

// skipReason is the message a skipped test logged, without the file:line
// prefix, or a placeholder when it logged none.
func skipReason(lines []string) string {
	var msg []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") || strings.HasPrefix(t, "*** ") {
			continue // framing, and notices printed once per process (internal/testdb)
		}
		msg = append(msg, strings.TrimSpace(fileLine.ReplaceAllString(l, "")))
	}
	if len(msg) == 0 {
		return "(no reason given)"
	}
	return strings.Join(msg, " ")
}

// printSkips prints the skipped tests grouped by reason, most first, with
// a few names each. A subtest skipped with its parent counts once per test.
func printSkips(out io.Writer, byReason map[string]*skipped) {
	if len(byReason) == 0 {
		fmt.Fprintln(out, "\nNo test was skipped.")
		return
	}
	groups := make([]*skipped, 0, len(byReason))
	total := 0
	for _, s := range byReason {
		groups = append(groups, s)
		total += len(s.tests)
	}
	sort.Slice(groups, func(i, j int) bool {
		if len(groups[i].tests) != len(groups[j].tests) {
			return len(groups[i].tests) > len(groups[j].tests)
		}
		return groups[i].reason < groups[j].reason
	})
	fmt.Fprintf(out, "\nSKIPPED: %d tests did not run:\n", total)
	for _, s := range groups {
		fmt.Fprintf(out, "  %4d  %s\n", len(s.tests), s.reason)
		const shown = 3
		names := topLevel(s.tests)
		more := ""
		if len(names) > shown {
			more = fmt.Sprintf(" and %d more", len(names)-shown)
			names = names[:shown]
		}
		fmt.Fprintf(out, "        in %s%s\n", strings.Join(names, ", "), more)
	}
}

// topLevel returns the distinct top-level tests ("pkg: TestX") of tests
// ("pkg: TestX/Sub/...").
func topLevel(tests []string) []string {
	seen := map[string]bool{}
	var names []string
	for _, t := range tests {
		pkg, test, _ := strings.Cut(t, ": ")
		test, _, _ = strings.Cut(test, "/")
		name := pkg + ": " + test
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// shortPackage drops the module path from a package path.
func shortPackage(p string) string {
	const module = "github.com/wharf-go/wharf/"
	if rest, ok := strings.CutPrefix(p, module); ok {
		return rest
	}
	if p == strings.TrimSuffix(module, "/") {
		return "wharf"
	}
	return p
}
