// Command wharf-harness-adapter runs wharf inside the public PostgreSQL
// job-queue benchmarking harness (hardbyte/postgresql-job-queue-benchmarking)
// under its long-horizon contract: one long-running process that reads its
// settings from the environment, produces jobs into wharf's outbox at a
// fixed rate, delivers them with one relay, prints a startup descriptor and
// then, on every clock-aligned tick, its metrics as JSON lines on stdout
// (logs go to stderr), and exits 0 within 5 seconds of SIGTERM.
//
// See README.md beside this file for the contract, the metrics and how to
// register the adapter with the harness; adapter.json is its manifest.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// shutdownBudget is how long the adapter may take to exit after SIGTERM
// (the contract allows 5 seconds).
const shutdownBudget = 4500 * time.Millisecond

func main() {
	os.Exit(mainWith(os.Getenv, os.Stdout, os.Stderr))
}

// mainWith runs the adapter with the given environment and streams and
// returns the exit status: 0 after a SIGTERM/SIGINT shutdown (or after
// migrate_only), 2 for bad settings, 1 for other failures.
func mainWith(getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "wharf-harness-adapter: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		// Whatever happens during the shutdown, exit within the budget.
		<-ctx.Done()
		time.Sleep(shutdownBudget)
		fmt.Fprintln(stderr, "wharf-harness-adapter: shutdown took too long; exiting")
		os.Exit(0)
	}()
	if err := run(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "wharf-harness-adapter: %v\n", err)
		if ctx.Err() != nil {
			return 0 // told to stop while starting up
		}
		return 1
	}
	return 0
}
