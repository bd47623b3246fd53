package idemsql

import (
	"context"
	"database/sql"
	"encoding/hex"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/querylog"
	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
)

// DefaultPurgeBatch bounds the records one purge statement deletes.
const DefaultPurgeBatch = 1000

// Stats implements ports.IdempotencyAdmin. It reads the whole table once.
func (s *Store) Stats(ctx context.Context) (ports.IdempotencyStats, error) {
	ctx = querylog.WithPort(ctx, "idempotency.stats")
	now := core.FormatTime(core.Clock(s.cfg.Now).Now())
	const live = "expires_at > ? AND status = '" + statusInProgress + "'"
	q := "SELECT" +
		" COALESCE(SUM(CASE WHEN " + live + " AND locked_until > ? THEN 1 ELSE 0 END), 0)," +
		" COALESCE(SUM(CASE WHEN " + live + " AND (locked_until IS NULL OR locked_until <= ?) THEN 1 ELSE 0 END), 0)," +
		" COALESCE(SUM(CASE WHEN expires_at > ? AND status <> '" + statusInProgress + "' THEN 1 ELSE 0 END), 0)," +
		" COALESCE(SUM(CASE WHEN expires_at <= ? THEN 1 ELSE 0 END), 0)," +
		" MIN(CASE WHEN expires_at <= ? THEN expires_at END)" +
		" FROM " + s.n.Table
	var (
		st     ports.IdempotencyStats
		oldest sql.NullString
	)
	err := s.db.QueryRowContext(ctx, q, now, now, now, now, now, now, now).
		Scan(&st.InProgress, &st.Abandoned, &st.Completed, &st.Expired, &oldest)
	if err != nil {
		return st, s.wrap("stats", err)
	}
	if oldest.Valid {
		if st.OldestExpiry, err = core.ParseTime(oldest.String); err != nil {
			return st, s.wrap("stats", err)
		}
	}
	return st, nil
}

const listColumns = "storage_key, namespace, idem_key, scope, fingerprint, status, result, locked_until, expires_at, created_at, updated_at"

// List implements ports.IdempotencyAdmin.
func (s *Store) List(ctx context.Context, f ports.IdempotencyFilter) ([]ports.IdempotencyRecord, error) {
	switch {
	case f.Limit < 0 || f.Limit > 1000:
		return nil, check.Invalidf("idempotency list: Limit %d must be within 0..1000 (0 means 100)", f.Limit)
	case f.Status != "" && f.Status != ports.IdempotencyInProgress && f.Status != ports.IdempotencyCompleted:
		return nil, check.Invalidf("idempotency list: unknown Status %q; use %q or %q", f.Status, ports.IdempotencyInProgress, ports.IdempotencyCompleted)
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	var (
		b    strings.Builder
		args []any
	)
	b.WriteString("SELECT " + listColumns + " FROM " + s.n.Table + " WHERE 1 = 1")
	add := func(cond string, vs ...any) {
		b.WriteString(" AND " + cond)
		args = append(args, vs...)
	}
	if f.Namespace != "" {
		add("namespace = ?", f.Namespace)
	}
	if f.Key != "" {
		add("idem_key = ?", f.Key)
	}
	if f.Status != "" {
		add("status = ?", string(f.Status))
	}
	if !f.ExpiredAt.IsZero() {
		add("expires_at <= ?", core.FormatTime(f.ExpiredAt))
	}
	if !f.LiveAt.IsZero() {
		add("expires_at > ?", core.FormatTime(f.LiveAt))
	}
	if f.After != "" {
		exp, key, err := parseCursor(f.After)
		if err != nil {
			return nil, err
		}
		add("(expires_at > ? OR (expires_at = ? AND storage_key > ?))", exp, exp, key)
	}
	b.WriteString(" ORDER BY expires_at, storage_key LIMIT ?")
	args = append(args, f.Limit)
	rows, err := s.db.QueryContext(querylog.WithPort(ctx, "idempotency.list"), b.String(), args...)
	if err != nil {
		return nil, s.wrap("list", err)
	}
	recs, err := scanRecords(rows)
	if err != nil {
		return nil, s.wrap("list", err)
	}
	return recs, nil
}

func scanRecords(rows *sql.Rows) ([]ports.IdempotencyRecord, error) {
	defer rows.Close()
	var out []ports.IdempotencyRecord
	for rows.Next() {
		var (
			r                         ports.IdempotencyRecord
			status, expires, created  string
			updated                   string
			result, locked            sql.NullString
			errExp, errCre, errUpdate error
		)
		if err := rows.Scan(&r.ID, &r.Namespace, &r.Key, &r.ScopeKey, &r.Fingerprint, &status, &result, &locked,
			&expires, &created, &updated); err != nil {
			return nil, err
		}
		r.Status = ports.IdempotencyRecordStatus(status)
		if result.Valid {
			r.Result = []byte(result.String)
		}
		if locked.Valid && locked.String != "" {
			var err error
			if r.LockedUntil, err = core.ParseTime(locked.String); err != nil {
				return nil, err
			}
		}
		r.ExpiresAt, errExp = core.ParseTime(expires)
		r.CreatedAt, errCre = core.ParseTime(created)
		r.UpdatedAt, errUpdate = core.ParseTime(updated)
		for _, err := range []error{errExp, errCre, errUpdate} {
			if err != nil {
				return nil, err
			}
		}
		r.Cursor = expires + "/" + r.ID
		out = append(out, r)
	}
	return out, rows.Err()
}

// parseCursor splits a record's Cursor into its expires_at and storage key.
func parseCursor(c string) (expires, key string, err error) {
	expires, key, ok := strings.Cut(c, "/")
	if ok {
		_, err = core.ParseTime(expires)
	}
	if !ok || err != nil || len(key) != 64 || !isHex(key) {
		return "", "", check.Invalidf("idempotency list: After %q is not the Cursor of a listed record", c)
	}
	return expires, key, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// Purge implements ports.IdempotencyAdmin: PurgeBatch until no batch is
// full.
func (s *Store) Purge(ctx context.Context, expiredBefore time.Time) (int64, error) {
	return sqlbase.Batches(ctx, "idempotency purge", "records", func() (int64, bool, error) {
		return s.PurgeBatch(ctx, expiredBefore, DefaultPurgeBatch)
	})
}

// PurgeBatch deletes up to limit of the records expired at expiredBefore,
// oldest first, and reports how many, and whether there may be more (the
// batch was full). It reads their keys from the expiry index first, then
// deletes them by primary key, checking the expiry again: it locks only
// the rows it deletes (no index range, so reservations of new keys never
// wait for it), and leaves a key reserved anew meanwhile. A cut-off after
// the store's clock says now is an error matching ports.ErrInvalidArgument.
func (s *Store) PurgeBatch(ctx context.Context, expiredBefore time.Time, limit int) (n int64, more bool, err error) {
	switch {
	case expiredBefore.IsZero():
		return 0, false, check.Invalidf("idempotency purge: zero expiredBefore; pass the cut-off time (now for every expired record)")
	case limit <= 0:
		return 0, false, check.Invalidf("idempotency purge: batch size %d must be positive", limit)
	}
	if now := core.Clock(s.cfg.Now).Now(); expiredBefore.After(now) {
		return 0, false, check.Invalidf("idempotency purge: cut-off %s is after now (%s): records that have not expired are live, and deleting them would let a retried request run again; pass now or an earlier time",
			core.FormatTime(expiredBefore), core.FormatTime(now))
	}
	ctx = querylog.WithPort(ctx, "idempotency.purge")
	cut := core.FormatTime(expiredBefore)
	rows, err := s.db.QueryContext(ctx, "SELECT storage_key FROM "+s.n.Table+" WHERE expires_at <= ? ORDER BY expires_at LIMIT ?", cut, limit)
	if err != nil {
		return 0, false, s.wrap("purge", err)
	}
	keys, err := scanStrings(rows)
	if err != nil {
		return 0, false, s.wrap("purge", err)
	}
	if len(keys) == 0 {
		return 0, false, nil
	}
	ctx, leave, err := s.gate.EnterFor(ctx, "idempotency", "purge")
	if err != nil {
		return 0, false, err
	}
	defer leave()
	res, err := s.db.ExecContext(ctx, "DELETE FROM "+s.n.Table+" WHERE storage_key IN (?) AND expires_at <= ?", bun.In(keys), cut)
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err != nil {
		return 0, false, s.wrap("purge", err)
	}
	return n, len(keys) == limit, nil
}

func scanStrings(rows *sql.Rows) ([]string, error) {
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
