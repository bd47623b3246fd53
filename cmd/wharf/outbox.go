package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

// openChecked opens the database and warns on stderr when the schema is
// not this wharf's (the command may still work); a missing table is an
// error.
func (c *cli) openChecked(ctx context.Context) (*wharf.Driver, error) {
	drv, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	if err := drv.CheckSchema(ctx); err != nil {
		if !errors.Is(err, wharf.ErrSchemaOutdated) && !errors.Is(err, wharf.ErrSchemaTooNew) {
			return nil, err
		}
		fmt.Fprintf(c.stderr, "warning: %s\n", c.redact(err.Error()))
	}
	return drv, nil
}

type outboxStatsJSON struct {
	Table       string  `json:"table"`
	At          string  `json:"at"`
	Ready       int64   `json:"ready"`
	Scheduled   int64   `json:"scheduled"`
	Leased      int64   `json:"leased"`
	Dead        int64   `json:"dead"`
	Pending     int64   `json:"pending"`
	Total       int64   `json:"total"`
	OldestReady *string `json:"oldest_ready"`
}

func outboxStatsOut(table string, st ports.OutboxStats, at time.Time) outboxStatsJSON {
	return outboxStatsJSON{Table: table, At: timeJSON(at), Ready: st.Ready, Scheduled: st.Scheduled, Leased: st.Leased, Dead: st.Dead,
		Pending: st.Pending(), Total: st.Total(), OldestReady: optTime(st.OldestReady)}
}

func (c *cli) outboxTableName() string {
	if c.outboxTable != "" {
		return c.outboxTable
	}
	return "outbox_messages"
}

func outboxStats(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return usageErrorf("takes no arguments (got %q)", args)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	drv, err := c.openChecked(ctx)
	if err != nil {
		return err
	}
	st, err := drv.Outbox().Stats(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	if c.json {
		return c.writeJSON(outboxStatsOut(c.outboxTableName(), st, now))
	}
	c.printOutboxStats(c.stdout, st, now)
	return nil
}

func (c *cli) printOutboxStats(out io.Writer, st ports.OutboxStats, now time.Time) {
	fmt.Fprintf(out, "outbox %s (%s)\n", c.outboxTableName(), c.drv.Dialect())
	fmt.Fprintf(out, "  ready         %d\n", st.Ready)
	fmt.Fprintf(out, "  scheduled     %d\n", st.Scheduled)
	fmt.Fprintf(out, "  leased        %d\n", st.Leased)
	fmt.Fprintf(out, "  dead          %d\n", st.Dead)
	fmt.Fprintf(out, "  total         %d\n", st.Total())
	fmt.Fprintf(out, "  oldest ready  %s\n", human(st.OldestReady, now))
}

type outboxRecordJSON struct {
	ID          string            `json:"id"`
	Kind        string            `json:"kind"`
	Topic       string            `json:"topic"`
	Key         string            `json:"key,omitempty"`
	Status      string            `json:"status"`
	Attempts    int               `json:"attempts"`
	MaxAttempts int               `json:"max_attempts"`
	AvailableAt string            `json:"available_at"`
	LockedUntil *string           `json:"locked_until"`
	LastError   string            `json:"last_error,omitempty"`
	CreatedAt   string            `json:"created_at"`
	UpdatedAt   string            `json:"updated_at"`
	Headers     map[string]string `json:"headers,omitempty"`
	Payload     json.RawMessage   `json:"payload"`
}

func outboxRecordOut(r ports.OutboxRecord) outboxRecordJSON {
	payload := r.Payload
	if !json.Valid(payload) {
		payload, _ = json.Marshal(string(payload))
	}
	return outboxRecordJSON{ID: r.ID, Kind: string(r.Kind), Topic: r.Topic, Key: r.Key, Status: string(r.Status), Attempts: r.Attempts,
		MaxAttempts: r.MaxAttempts, AvailableAt: timeJSON(r.AvailableAt), LockedUntil: optTime(r.LockedUntil), LastError: r.LastError,
		CreatedAt: timeJSON(r.CreatedAt), UpdatedAt: timeJSON(r.UpdatedAt), Headers: r.Headers, Payload: payload}
}

func outboxListFlags(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.f.status, "status", "", "pending or dead (default both)")
	fs.StringVar(&c.f.topic, "topic", "", "only this topic")
	fs.StringVar(&c.f.key, "key", "", "only this ordering key")
	fs.StringVar(&c.f.after, "after", "", "continue after this ID (the next page)")
	fs.IntVar(&c.f.limit, "limit", 50, "at most this many (1..1000)")
}

func outboxList(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return usageErrorf("takes no arguments (got %q); filter with --status, --topic, --key", args)
	}
	if c.f.limit < 1 || c.f.limit > 1000 {
		return usageErrorf("--limit %d must be within 1..1000", c.f.limit)
	}
	if c.f.status != "" && c.f.status != "pending" && c.f.status != "dead" {
		return usageErrorf("--status %q: use pending or dead", c.f.status)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	drv, err := c.openChecked(ctx)
	if err != nil {
		return err
	}
	recs, err := drv.Outbox().List(ctx, ports.OutboxFilter{
		Status: ports.MessageStatus(c.f.status), Topic: c.f.topic, Key: c.f.key, AfterID: c.f.after, Limit: c.f.limit,
	})
	if err != nil {
		return err
	}
	if c.json {
		out := make([]outboxRecordJSON, len(recs))
		for i, r := range recs {
			out[i] = outboxRecordOut(r)
		}
		return c.writeJSON(out)
	}
	now := time.Now()
	w := c.table()
	fmt.Fprintln(w, "ID\tSTATUS\tATTEMPTS\tTOPIC\tKEY\tAVAILABLE\tLAST ERROR")
	for _, r := range recs {
		status := string(r.Status)
		if r.LockedUntil.After(now) {
			status = "leased"
		}
		fmt.Fprintf(w, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", r.ID, status, r.Attempts, r.MaxAttempts, cut(r.Topic, 40), orDash(cut(r.Key, 24)),
			human(r.AvailableAt, now), orDash(cut(r.LastError, 60)))
	}
	_ = w.Flush()
	if len(recs) == c.f.limit {
		fmt.Fprintf(c.stderr, "(more may follow: --after %s)\n", recs[len(recs)-1].ID)
	} else if len(recs) == 0 {
		fmt.Fprintln(c.stderr, "(no messages)")
	}
	return nil
}

func outboxShow(ctx context.Context, c *cli, args []string) error {
	if len(args) != 1 {
		return usageErrorf("takes one message ID (got %d arguments)", len(args))
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	drv, err := c.openChecked(ctx)
	if err != nil {
		return err
	}
	recs, err := drv.Outbox().List(ctx, ports.OutboxFilter{ID: args[0], Limit: 1})
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return withCode(exitNotFound, fmt.Errorf("message %q is not in %s (delivered messages leave the outbox)", args[0], c.outboxTableName()))
	}
	r := recs[0]
	if c.json {
		return c.writeJSON(outboxRecordOut(r))
	}
	now := time.Now()
	w := c.table()
	fmt.Fprintf(w, "id\t%s\n", r.ID)
	fmt.Fprintf(w, "status\t%s\n", r.Status)
	fmt.Fprintf(w, "kind\t%s\n", r.Kind)
	fmt.Fprintf(w, "topic\t%s\n", r.Topic)
	fmt.Fprintf(w, "key\t%s\n", orDash(r.Key))
	fmt.Fprintf(w, "attempts\t%d of %d\n", r.Attempts, r.MaxAttempts)
	fmt.Fprintf(w, "available at\t%s\n", human(r.AvailableAt, now))
	fmt.Fprintf(w, "leased until\t%s\n", human(r.LockedUntil, now))
	fmt.Fprintf(w, "created at\t%s\n", human(r.CreatedAt, now))
	fmt.Fprintf(w, "updated at\t%s\n", human(r.UpdatedAt, now))
	fmt.Fprintf(w, "last error\t%s\n", orDash(r.LastError))
	for _, k := range sortedKeys(r.Headers) {
		fmt.Fprintf(w, "header %s\t%s\n", k, r.Headers[k])
	}
	_ = w.Flush()
	var pretty strings.Builder
	if b, err := json.MarshalIndent(json.RawMessage(r.Payload), "", "  "); err == nil {
		pretty.Write(b)
	} else {
		pretty.Write(r.Payload)
	}
	fmt.Fprintf(c.stdout, "payload:\n%s\n", pretty.String())
	return nil
}

func outboxRequeueFlags(fs *flag.FlagSet, c *cli) {
	fs.BoolVar(&c.f.all, "all", false, "requeue every dead letter (asks first unless --yes)")
}

func outboxRequeue(ctx context.Context, c *cli, args []string) error {
	switch {
	case c.f.all && len(args) > 0:
		return usageErrorf("pass message IDs or --all, not both")
	case !c.f.all && len(args) == 0:
		return usageErrorf("pass the IDs of the dead letters to requeue, or --all")
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	drv, err := c.openChecked(ctx)
	if err != nil {
		return err
	}
	ob := drv.Outbox()
	if c.f.all {
		st, err := ob.Stats(ctx)
		if err != nil {
			return err
		}
		if err := c.confirm(fmt.Sprintf("Requeue all %d dead letters of %s (%s)? They will be delivered again.",
			st.Dead, c.outboxTableName(), drv.Dialect())); err != nil {
			return err
		}
	}
	// Named messages: only dead letters are requeued; say which are not.
	ids, missed := args, []string{}
	if !c.f.all {
		ids = nil
		for _, id := range args {
			recs, err := ob.List(ctx, ports.OutboxFilter{ID: id, Limit: 1})
			switch {
			case err != nil:
				return err
			case len(recs) == 0:
				missed = append(missed, id+" (not in the outbox)")
			case recs[0].Status != ports.StatusDead:
				missed = append(missed, id+" (pending, not a dead letter)")
			default:
				ids = append(ids, id)
			}
		}
	}
	var n int64
	if c.f.all || len(ids) > 0 {
		if n, err = ob.Requeue(ctx, ids...); err != nil {
			return err
		}
	}
	if c.json {
		if err := c.writeJSON(struct {
			Requeued int64    `json:"requeued"`
			Missed   []string `json:"not_requeued"`
		}{n, missed}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "Requeued %d dead letter(s) of %s.\n", n, c.outboxTableName())
	}
	if len(missed) > 0 {
		return withCode(exitNotFound, fmt.Errorf("not requeued: %s", strings.Join(missed, ", ")))
	}
	return nil
}

func outboxPurgeFlags(fs *flag.FlagSet, c *cli) {
	fs.StringVar(&c.f.olderThan, "older-than", "", "delete dead letters last updated before this age (72h, 14d) or time (RFC 3339)")
}

func outboxPurge(ctx context.Context, c *cli, args []string) error {
	return runPurge(ctx, c, args, purgeSpec{
		flag: "--older-than", value: c.f.olderThan,
		question: func(ctx context.Context, drv *wharf.Driver, cutoff time.Time) (string, error) {
			st, err := drv.Outbox().Stats(ctx)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("Delete the dead letters of %s (%s) last updated before %s? %d dead letters in all.",
				c.outboxTableName(), drv.Dialect(), timeJSON(cutoff), st.Dead), nil
		},
		purge: func(ctx context.Context, drv *wharf.Driver, cutoff time.Time) (int64, error) {
			return drv.Outbox().Purge(ctx, cutoff)
		},
		done: func(n int64, cutoff time.Time) string {
			return fmt.Sprintf("Purged %d dead letter(s) of %s last updated before %s.", n, c.outboxTableName(), timeJSON(cutoff))
		},
	})
}

func outboxWatchFlags(fs *flag.FlagSet, c *cli) {
	fs.DurationVar(&c.f.interval, "interval", 2*time.Second, "refresh every")
	fs.IntVar(&c.f.count, "count", 0, "stop after this many refreshes (0: until interrupted)")
}

func outboxWatch(ctx context.Context, c *cli, args []string) error {
	if len(args) > 0 {
		return usageErrorf("takes no arguments (got %q)", args)
	}
	if c.f.interval < 100*time.Millisecond {
		return usageErrorf("--interval %v is below 100ms", c.f.interval)
	}
	if c.f.count < 0 {
		return usageErrorf("--count %d is negative", c.f.count)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	drv, err := c.openChecked(ctx)
	if err != nil {
		return err
	}
	tty := isTerminal(c.stdout) && !c.json
	const lines = 8 // printOutboxStats' 7 lines and the footer
	for i := 0; c.f.count == 0 || i < c.f.count; i++ {
		if i > 0 {
			t := time.NewTimer(c.f.interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil // Ctrl-C ends a watch: not a failure
			case <-t.C:
			}
		}
		st, err := drv.Outbox().Stats(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		now := time.Now()
		switch {
		case c.json:
			b, _ := json.Marshal(outboxStatsOut(c.outboxTableName(), st, now))
			fmt.Fprintf(c.stdout, "%s\n", b)
		case tty:
			if i > 0 {
				fmt.Fprintf(c.stdout, "\033[%dA", lines) // back to the first line
			}
			var b strings.Builder
			c.printOutboxStats(&b, st, now)
			fmt.Fprintf(&b, "  (every %v; Ctrl-C stops)\n", c.f.interval)
			fmt.Fprint(c.stdout, strings.ReplaceAll(b.String(), "\n", "\033[K\n"))
		default:
			fmt.Fprintf(c.stdout, "%s ready=%d scheduled=%d leased=%d dead=%d total=%d oldest_ready=%s\n", timeJSON(now),
				st.Ready, st.Scheduled, st.Leased, st.Dead, st.Total(), orDash(stringOr(optTime(st.OldestReady))))
		}
	}
	return nil
}

func stringOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
