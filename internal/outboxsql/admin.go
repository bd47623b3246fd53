package outboxsql

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/querylog"
	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
)

// Stats implements ports.OutboxAdmin.
func (o *Outbox) Stats(ctx context.Context) (ports.OutboxStats, error) {
	now := core.FormatTime(o.now())
	var (
		st     ports.OutboxStats
		oldest sql.NullString
	)
	err := o.db.QueryRowContext(ctx, o.q.stats, now, now, now, now, now, now, now).
		Scan(&st.Ready, &st.Scheduled, &st.Leased, &st.Dead, &oldest)
	if err != nil {
		return st, o.wrap("stats", err)
	}
	if st.OldestReady, err = parseOptTime(oldest); err != nil {
		return st, o.wrap("stats", err)
	}
	return st, nil
}

// List implements ports.OutboxAdmin.
func (o *Outbox) List(ctx context.Context, f ports.OutboxFilter) ([]ports.OutboxRecord, error) {
	switch {
	case f.Limit < 0 || f.Limit > 1000:
		return nil, check.Invalidf("outbox list: Limit %d must be within 0..1000 (0 means 100)", f.Limit)
	case f.Status != "" && f.Status != ports.StatusPending && f.Status != ports.StatusDead:
		return nil, check.Invalidf("outbox list: unknown Status %q; use %q or %q", f.Status, ports.StatusPending, ports.StatusDead)
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	var (
		b    strings.Builder
		args []any
	)
	b.WriteString("SELECT " + Columns + " FROM " + o.q.n.Table + " WHERE 1 = 1")
	add := func(cond string, v any) {
		b.WriteString(" AND " + cond)
		args = append(args, v)
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	if f.ID != "" {
		add("id = ?", f.ID)
	}
	if f.Topic != "" {
		add("topic = ?", f.Topic)
	}
	if f.Key != "" {
		add("ordering_key = ?", f.Key)
	}
	if f.AfterID != "" {
		add("id > ?", f.AfterID)
	}
	b.WriteString(" ORDER BY id LIMIT ?")
	args = append(args, f.Limit)
	rows, err := o.db.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, o.wrap("list", err)
	}
	recs, err := ScanRecords(rows)
	if err != nil {
		return nil, o.wrap("list", err)
	}
	out := make([]ports.OutboxRecord, len(recs))
	for i := range recs {
		out[i] = recs[i].OutboxRecord
	}
	return out, nil
}

// Requeue implements ports.OutboxAdmin.
func (o *Outbox) Requeue(ctx context.Context, ids ...string) (int64, error) {
	now := core.FormatTime(o.now())
	q := "UPDATE " + o.q.n.Table + " SET status = 'pending', attempts = 0, available_at = ?, locked_until = NULL," +
		" claim_token = NULL, updated_at = ? WHERE status = 'dead'"
	args := []any{now, now}
	if len(ids) > 0 {
		q += " AND id IN (?)"
		args = append(args, bun.In(ids))
	}
	n, err := o.exec(ctx, "requeue", q, args...)
	if n > 0 && !sqlbase.InTx(o.db) {
		o.Committed() // wake this process's relays
	}
	return n, err
}

// DefaultPurgeBatch bounds the dead letters one purge statement deletes.
const DefaultPurgeBatch = 1000

// Purge implements ports.OutboxAdmin: PurgeBatch until no batch is full.
func (o *Outbox) Purge(ctx context.Context, olderThan time.Time) (int64, error) {
	return sqlbase.Batches(ctx, "outbox purge", "dead letters", func() (int64, bool, error) {
		return o.PurgeBatch(ctx, olderThan, DefaultPurgeBatch)
	})
}

// PurgeBatch deletes up to limit dead letters last updated before
// olderThan and reports how many, and whether there may be more (the batch
// was full). It reads their IDs first, then deletes them by primary key,
// checking status and updated_at again, so that it locks only the rows it
// deletes (no range of an index) and leaves a message requeued meanwhile.
func (o *Outbox) PurgeBatch(ctx context.Context, olderThan time.Time, limit int) (n int64, more bool, err error) {
	switch {
	case olderThan.IsZero():
		return 0, false, check.Invalidf("outbox purge: zero olderThan; pass the cut-off time")
	case limit <= 0:
		return 0, false, check.Invalidf("outbox purge: batch size %d must be positive", limit)
	}
	cut := core.FormatTime(olderThan)
	t := o.q.n.Table
	rows, err := o.db.QueryContext(querylog.WithPort(ctx, "outbox.purge"),
		"SELECT id FROM "+t+" WHERE status = 'dead' AND updated_at < ? LIMIT ?", cut, limit)
	if err != nil {
		return 0, false, o.wrap("purge", err)
	}
	ids, err := ScanIDList(rows)
	if err != nil || len(ids) == 0 {
		return 0, false, o.wrapIf("purge", err)
	}
	n, err = o.exec(ctx, "purge", "DELETE FROM "+t+" WHERE id IN (?) AND status = 'dead' AND updated_at < ?", bun.In(ids), cut)
	return n, len(ids) == limit, err
}

func (o *Outbox) wrapIf(op string, err error) error {
	if err == nil {
		return nil
	}
	return o.wrap(op, err)
}

func (o *Outbox) exec(ctx context.Context, op, q string, args ...any) (int64, error) {
	ctx = querylog.WithPort(ctx, "outbox."+op)
	ctx, leave, err := o.gate.EnterFor(ctx, "outbox", op)
	if err != nil {
		return 0, err
	}
	defer leave()
	res, err := o.db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, o.wrap(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, o.wrap(op, err)
	}
	return n, nil
}
