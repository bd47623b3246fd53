package main

import (
	"context"
	"fmt"
	"time"

	"github.com/wharf-go/wharf"
)

// purgeSpec is what differs between the outbox and the idempotency purge
// commands; runPurge does the rest (parse the cutoff, open, confirm, purge,
// report).
type purgeSpec struct {
	// flag and value are the cutoff's flag name and its value.
	flag, value string
	// question asks for confirmation, with the count that would go.
	question func(ctx context.Context, drv *wharf.Driver, cutoff time.Time) (string, error)
	// purge deletes and returns how many rows went.
	purge func(ctx context.Context, drv *wharf.Driver, cutoff time.Time) (int64, error)
	// done is the line printed after a purge (without --json).
	done func(n int64, cutoff time.Time) string
}

func runPurge(ctx context.Context, c *cli, args []string, s purgeSpec) error {
	if len(args) > 0 {
		return usageErrorf("takes no arguments (got %q)", args)
	}
	cutoff, err := parseAge(s.flag, s.value, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	drv, err := c.openChecked(ctx)
	if err != nil {
		return err
	}
	q, err := s.question(ctx, drv, cutoff)
	if err != nil {
		return err
	}
	if err := c.confirm(q); err != nil {
		return err
	}
	n, err := s.purge(ctx, drv, cutoff)
	if err != nil {
		return fmt.Errorf("purged %d, then: %w", n, err)
	}
	if c.json {
		return c.writeJSON(struct {
			Purged int64  `json:"purged"`
			Before string `json:"before"`
		}{n, timeJSON(cutoff)})
	}
	fmt.Fprintln(c.stdout, s.done(n, cutoff))
	return nil
}
