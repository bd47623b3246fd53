package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

func (c *cli) idemTableName() string {
	if c.idemTable != "" {
		return c.idemTable
	}
	return "idempotency_records"
}

func idemStats(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return usageErrorf("takes no arguments (got %q)", args)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	drv, err := c.openChecked(ctx)
	if err != nil {
		return err
	}
	st, err := drv.Idempotency().Stats(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	if c.json {
		return c.writeJSON(struct {
			Table        string  `json:"table"`
			At           string  `json:"at"`
			InProgress   int64   `json:"in_progress"`
			Abandoned    int64   `json:"abandoned"`
			Completed    int64   `json:"completed"`
			Expired      int64   `json:"expired"`
			Total        int64   `json:"total"`
			OldestExpiry *string `json:"oldest_expiry"`
		}{c.idemTableName(), timeJSON(now), st.InProgress, st.Abandoned, st.Completed, st.Expired, st.Total(), optTime(st.OldestExpiry)})
	}
	fmt.Fprintf(c.stdout, "idempotency %s (%s)\n", c.idemTableName(), drv.Dialect())
	fmt.Fprintf(c.stdout, "  in progress    %d\n", st.InProgress)
	fmt.Fprintf(c.stdout, "  abandoned      %d\n", st.Abandoned)
	fmt.Fprintf(c.stdout, "  completed      %d\n", st.Completed)
	fmt.Fprintf(c.stdout, "  expired        %d\n", st.Expired)
	fmt.Fprintf(c.stdout, "  total          %d\n", st.Total())
	fmt.Fprintf(c.stdout, "  oldest expiry  %s\n", human(st.OldestExpiry, now))
	return nil
}

func idemListFlags(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.f.namespace, "namespace", "", "only this namespace")
	fs.StringVar(&c.f.key, "key", "", "only this idempotency key")
	fs.StringVar(&c.f.status, "status", "", "in_progress or completed (default both)")
	fs.BoolVar(&c.f.expired, "expired", false, "only records already expired")
	fs.BoolVar(&c.f.live, "live", false, "only records not yet expired")
	fs.StringVar(&c.f.after, "after", "", "continue after this cursor (the next page)")
	fs.IntVar(&c.f.limit, "limit", 50, "at most this many (1..1000)")
}

type idemRecordJSON struct {
	ID          string          `json:"id"`
	Namespace   string          `json:"namespace"`
	Key         string          `json:"key"`
	Scope       string          `json:"scope,omitempty"`
	Fingerprint string          `json:"fingerprint"`
	Status      string          `json:"status"`
	Result      json.RawMessage `json:"result,omitempty"`
	LockedUntil *string         `json:"locked_until"`
	ExpiresAt   string          `json:"expires_at"`
	CreatedAt   string          `json:"created_at"`
	UpdatedAt   string          `json:"updated_at"`
	Cursor      string          `json:"cursor"`
}

func idemList(ctx context.Context, c *cli, args []string) error {
	switch {
	case len(args) > 0:
		return usageErrorf("takes no arguments (got %q); filter with --namespace, --key, --status", args)
	case c.f.limit < 1 || c.f.limit > 1000:
		return usageErrorf("--limit %d must be within 1..1000", c.f.limit)
	case c.f.expired && c.f.live:
		return usageErrorf("pass --expired or --live, not both")
	case c.f.status != "" && c.f.status != string(ports.IdempotencyInProgress) && c.f.status != string(ports.IdempotencyCompleted):
		return usageErrorf("--status %q: use in_progress or completed", c.f.status)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	drv, err := c.openChecked(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	f := ports.IdempotencyFilter{Namespace: c.f.namespace, Key: c.f.key, Status: ports.IdempotencyRecordStatus(c.f.status), After: c.f.after, Limit: c.f.limit}
	if c.f.expired {
		f.ExpiredAt = now
	}
	if c.f.live {
		f.LiveAt = now
	}
	recs, err := drv.Idempotency().List(ctx, f)
	if err != nil {
		return withCode(codeOf(err), err)
	}
	if c.json {
		out := make([]idemRecordJSON, len(recs))
		for i, r := range recs {
			out[i] = idemRecordJSON{ID: r.ID, Namespace: r.Namespace, Key: r.Key, Scope: r.ScopeKey, Fingerprint: r.Fingerprint,
				Status: string(r.Status), Result: r.Result, LockedUntil: optTime(r.LockedUntil), ExpiresAt: timeJSON(r.ExpiresAt),
				CreatedAt: timeJSON(r.CreatedAt), UpdatedAt: timeJSON(r.UpdatedAt), Cursor: r.Cursor}
			if !json.Valid(out[i].Result) {
				out[i].Result = nil
			}
		}
		return c.writeJSON(out)
	}
	w := c.table()
	fmt.Fprintln(w, "NAMESPACE\tKEY\tSCOPE\tSTATUS\tEXPIRES\tRESULT")
	for _, r := range recs {
		status := string(r.Status)
		if r.Status == ports.IdempotencyInProgress && !r.LockedUntil.After(now) {
			status = "abandoned"
		}
		if !r.ExpiresAt.After(now) {
			status += " (expired)"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", cut(r.Namespace, 30), cut(r.Key, 40), orDash(cut(r.ScopeKey, 30)), status,
			human(r.ExpiresAt, now), orDash(cut(string(r.Result), 40)))
	}
	_ = w.Flush()
	if len(recs) == c.f.limit {
		fmt.Fprintf(c.stderr, "(more may follow: --after %s)\n", recs[len(recs)-1].Cursor)
	} else if len(recs) == 0 {
		fmt.Fprintln(c.stderr, "(no records)")
	}
	return nil
}

func idemPurgeFlags(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.f.expiredBefore, "expired-before", "0s", "delete records expired at least this long ago (0s: every expired record; 72h, 14d) or before this time (RFC 3339)")
}

func idemPurge(ctx context.Context, c *cli, args []string) error {
	return runPurge(ctx, c, args, purgeSpec{
		flag: "--expired-before", value: c.f.expiredBefore,
		question: func(ctx context.Context, drv *wharf.Driver, cutoff time.Time) (string, error) {
			st, err := drv.Idempotency().Stats(ctx)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("Delete the records of %s (%s) expired at %s? %d records are expired now.",
				c.idemTableName(), drv.Dialect(), timeJSON(cutoff), st.Expired), nil
		},
		purge: func(ctx context.Context, drv *wharf.Driver, cutoff time.Time) (int64, error) {
			return drv.Idempotency().Purge(ctx, cutoff)
		},
		done: func(n int64, _ time.Time) string {
			return fmt.Sprintf("Purged %d expired record(s) of %s.", n, c.idemTableName())
		},
	})
}
