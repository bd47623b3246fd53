package outboxsql

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
)

// Columns is the outbox column list in scan order.
const Columns = "id, kind, topic, ordering_key, payload, headers, status, attempts, max_attempts, available_at, locked_until, claim_token, last_error, created_at, updated_at"

// Queries holds the SQL texts of one outbox table, built once from
// validated, quoted names. User input only ever travels as arguments.
type Queries struct {
	n          sqlbase.Names
	claimIndex string
	keyIndex   string

	insertPrefix string
	retry        string
	deadLetter   string
	extend       string
	stats        string
}

// NewQueries validates table ("" means DefaultTableName) and builds its SQL.
func NewQueries(table string, d sqlbase.Dialect) (*Queries, error) {
	if table == "" {
		table = DefaultTableName
	}
	n, err := sqlbase.NewNames("outbox", table, d)
	if err != nil {
		return nil, err
	}
	t := n.Table
	return &Queries{
		n:            n,
		claimIndex:   n.Index("_claim_idx"),
		keyIndex:     n.Index("_key_idx"),
		insertPrefix: "INSERT INTO " + t + " (" + Columns + ") VALUES ",
		retry: "UPDATE " + t + " SET status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END," +
			" available_at = ?, locked_until = NULL, claim_token = NULL, last_error = ?, updated_at = ?" +
			" WHERE id = ? AND claim_token = ? AND status = 'pending'",
		deadLetter: "UPDATE " + t + " SET status = 'dead', locked_until = NULL, claim_token = NULL, last_error = ?, updated_at = ?" +
			" WHERE id = ? AND claim_token = ? AND status = 'pending'",
		extend: "UPDATE " + t + " SET locked_until = ?, updated_at = ? WHERE id = ? AND claim_token = ? AND status = 'pending'",
		stats: "SELECT" +
			" COALESCE(SUM(CASE WHEN status = 'pending' AND available_at <= ? AND (locked_until IS NULL OR locked_until <= ?) THEN 1 ELSE 0 END), 0)," +
			" COALESCE(SUM(CASE WHEN status = 'pending' AND available_at > ? AND (locked_until IS NULL OR locked_until <= ?) THEN 1 ELSE 0 END), 0)," +
			" COALESCE(SUM(CASE WHEN status = 'pending' AND locked_until > ? THEN 1 ELSE 0 END), 0)," +
			" COALESCE(SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END), 0)," +
			" MIN(CASE WHEN status = 'pending' AND available_at <= ? AND (locked_until IS NULL OR locked_until <= ?) THEN available_at END)" +
			" FROM " + t,
	}, nil
}

// Names returns the table's names.
func (q *Queries) Names() sqlbase.Names { return q.n }

// ClaimIndex is the unquoted name of the index that serves the claim.
func (q *Queries) ClaimIndex() string { return q.claimIndex }

// KeyIndex is the unquoted name of the index that serves the per-key check.
func (q *Queries) KeyIndex() string { return q.keyIndex }

// InsertValues renders an INSERT of rows (each in Columns order) as one
// multi-row VALUES list.
func (q *Queries) InsertValues(rows [][]any) (string, []any) {
	var b strings.Builder
	b.Grow(len(q.insertPrefix) + len(rows)*48)
	b.WriteString(q.insertPrefix)
	args := make([]any, 0, len(rows)*len(rows[0]))
	for i, r := range rows {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, r...)
	}
	return b.String(), args
}

// ClaimParams are the inputs of a dialect's claim.
type ClaimParams struct {
	Now         string // FormatTime(now)
	LockedUntil string // FormatTime(now + lease)
	TokenPrefix string // the claim's random prefix; a message's token is prefix + id
	Limit       int
	Topics      []string
	// From is the claim cursor (see cursors): the scan may skip messages
	// whose available_at is before it. "" scans from the start.
	From string
}

// Settlement is one Complete or Release: the claims it applies to (a
// token embeds its message's ID, so the pair of lists matches exactly the
// given claims) and, for a release, the time to stamp.
type Settlement struct {
	// Release is true for Release (give back, attempt refunded), false for
	// Complete (delete).
	Release bool
	IDs     []string
	Tokens  []string
	// Now is FormatTime(now), for Release's updated_at.
	Now string
}

// Op names the operation in errors.
func (s Settlement) Op() string {
	if s.Release {
		return "release"
	}
	return "complete"
}

// Heads are the opening words of a settlement's two statements, up to
// and including the table reference: "UPDATE t" and "DELETE FROM t" when
// empty. A dialect that needs an index hint gives its own (MySQL:
// "DELETE t FROM t FORCE INDEX (PRIMARY)", the multiple-table form being
// the one that accepts hints).
type Heads struct {
	Update, Delete string
}

// SettleSQL renders s as one statement fenced on (id IN ids AND
// claim_token IN tokens), opened by h; returning adds RETURNING id.
func (q *Queries) SettleSQL(s Settlement, h Heads, returning bool) (string, []any) {
	t := q.n.Table
	if h.Update == "" {
		h.Update = "UPDATE " + t
	}
	if h.Delete == "" {
		h.Delete = "DELETE FROM " + t
	}
	var b strings.Builder
	var args []any
	if s.Release {
		b.WriteString(h.Update + " SET attempts = attempts - 1, locked_until = NULL, claim_token = NULL, updated_at = ?" +
			" WHERE id IN (?) AND claim_token IN (?) AND status = 'pending'")
		args = []any{s.Now, bun.In(s.IDs), bun.In(s.Tokens)}
	} else {
		b.WriteString(h.Delete + " WHERE id IN (?) AND claim_token IN (?)")
		args = []any{bun.In(s.IDs), bun.In(s.Tokens)}
	}
	if returning {
		b.WriteString(" RETURNING id")
	}
	return b.String(), args
}

// Lost returns the IDs of s whose claims are not in applied.
func (s Settlement) Lost(applied map[string]struct{}) []string {
	if len(applied) == len(s.IDs) {
		return nil
	}
	var lost []string
	for _, id := range s.IDs {
		if _, ok := applied[id]; !ok {
			lost = append(lost, id)
		}
	}
	return lost
}

// Eligible returns the shared eligibility subquery: the IDs of up to Limit
// claimable messages in claim order, from p.From on (the claim cursor; ""
// scans from the start). hint follows the table reference (e.g. SQLite's
// INDEXED BY); suffix follows LIMIT (e.g. FOR UPDATE SKIP LOCKED).
// Messages whose lease expired on their final attempt are included so the
// claim can dead-letter them. Arguments: Eligible's args.
func (q *Queries) Eligible(p ClaimParams, hint, suffix string) (string, []any) {
	return q.eligible(p, "c.id", hint, suffix, p.From, "")
}

// Behind returns the read-only query behind a claim cursor's sweep: the
// available_at of the first claimable message before before (the claim's
// From), in claim order. hint is as Eligible's. Arguments: Eligible's, with
// before's after the lease bounds.
func (q *Queries) Behind(p ClaimParams, hint, before string) (string, []any) {
	p.Limit = 1
	return q.eligible(p, "c.available_at", hint, "", "", before)
}

// EligibleRows is Eligible selecting cols (e.g. ClaimColumns) instead of
// the IDs, from from on instead of p.From (a dialect that found a later
// start itself): one range of an index on (status, available_at, ...).
// Arguments: Eligible's, with from's after the lease bounds.
//
// The bound is deliberately one column. A row-value bound such as
// (available_at, id) >= (?, ?) lets MariaDB's range optimizer split the scan
// into many small intervals over every column of the claim index, and
// under FOR UPDATE SKIP LOCKED such a scan waits for rows other claimers
// hold instead of skipping them (claimers deadlocked with each other).
func (q *Queries) EligibleRows(p ClaimParams, cols, hint, suffix, from string) (string, []any) {
	return q.eligible(p, cols, hint, suffix, from, "")
}

func (q *Queries) eligible(p ClaimParams, cols, hint, suffix, from, before string) (string, []any) {
	var b strings.Builder
	t := q.n.Table
	b.WriteString("SELECT " + cols + " FROM " + t + " AS c" + hint)
	b.WriteString(" WHERE c.status = 'pending' AND c.available_at <= ? AND (c.locked_until IS NULL OR c.locked_until <= ?)")
	args := []any{p.Now, p.Now}
	if from != "" {
		b.WriteString(" AND c.available_at >= ?")
		args = append(args, from)
	}
	if before != "" {
		b.WriteString(" AND c.available_at < ?")
		args = append(args, before)
	}
	if len(p.Topics) > 0 {
		b.WriteString(" AND c.topic IN (?)")
		args = append(args, bun.In(p.Topics))
	}
	b.WriteString(" AND (c.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM " + t +
		" AS e WHERE e.ordering_key = c.ordering_key AND e.status = 'pending' AND e.id < c.id))")
	b.WriteString(" ORDER BY c.available_at, c.id LIMIT ?")
	args = append(args, p.Limit)
	b.WriteString(suffix)
	return b.String(), args
}

// ClaimSet returns the SET clause shared by the claim statements: claimable
// rows get a token, a lease and one more attempt; rows whose lease expired
// on their final attempt become dead. concat renders "prefix || id" for the
// dialect. Its arguments come first in args order.
func (q *Queries) ClaimSet(p ClaimParams, concatPrefixID string) (string, []any) {
	const final = "attempts >= max_attempts"
	set := "status = CASE WHEN " + final + " THEN 'dead' ELSE 'pending' END," +
		" claim_token = CASE WHEN " + final + " THEN NULL ELSE " + concatPrefixID + " END," +
		" locked_until = CASE WHEN " + final + " THEN NULL ELSE ? END," +
		" last_error = CASE WHEN " + final + " THEN ? ELSE last_error END," +
		" updated_at = ?," +
		" attempts = CASE WHEN " + final + " THEN attempts ELSE attempts + 1 END"
	return set, []any{p.TokenPrefix, p.LockedUntil, LeaseExpiredError, p.Now}
}

// Record is one stored row.
type Record struct {
	ports.OutboxRecord
	Token string
}

// Claimed converts a claimed row.
func (r *Record) Claimed() ports.ClaimedMessage {
	return ports.ClaimedMessage{
		ID: r.ID, Kind: r.Kind, Topic: r.Topic, Key: r.Key, Payload: r.Payload, Headers: r.Headers,
		Attempts: r.Attempts, MaxAttempts: r.MaxAttempts, AvailableAt: r.AvailableAt,
		LockedUntil: r.LockedUntil, LastError: r.LastError, CreatedAt: r.CreatedAt, Token: r.Token,
	}
}

// ScanRecords reads rows selected with Columns and closes them.
func ScanRecords(rows *sql.Rows) ([]Record, error) { return ScanRecordsN(rows, 0) }

// recordBufs recycles the claims' record buffers: a claim's records are
// copied into the ClaimedMessages it returns, so its buffer (room for the
// claim's limit) serves the next claim instead of being allocated again.
var recordBufs sync.Pool // *[]Record, empty

// recordBuf returns an empty buffer with room for n records (nil for n 0).
func recordBuf(n int) []Record {
	if n <= 0 {
		return nil
	}
	if b, ok := recordBufs.Get().(*[]Record); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]Record, 0, n)
}

// releaseRecords hands the buffer of recs (from ScanRecordsN or
// ScanClaimed, no longer used) back for the next claim. Its records are
// cleared first, so that it keeps no payload alive.
func releaseRecords(recs []Record) {
	if cap(recs) == 0 || cap(recs) > maxPooledRecords {
		return
	}
	clear(recs[:cap(recs)])
	recs = recs[:0]
	recordBufs.Put(&recs)
}

// maxPooledRecords bounds the buffers kept for reuse (a claim of more rows
// allocates its own).
const maxPooledRecords = 1000

// ScanRecordsN is ScanRecords with room for n rows at the first row (the
// claim's limit; 0 when unknown), from a recycled buffer (see
// releaseRecords).
func ScanRecordsN(rows *sql.Rows, n int) ([]Record, error) {
	defer rows.Close()
	var (
		out           []Record
		c             scanned
		locked, token sql.NullString
		updated       string
	)
	for rows.Next() {
		var r Record
		if err := rows.Scan(&r.ID, &c.kind, &r.Topic, &c.key, &c.payload, &c.headers, &c.status, &r.Attempts, &r.MaxAttempts,
			&c.avail, &locked, &token, &c.lastE, &c.created, &updated); err != nil {
			return nil, err
		}
		if out == nil {
			out = recordBuf(max(n, 1)) // on the first row: an empty claim takes nothing
		}
		if err := c.decode(&r); err != nil {
			return nil, err
		}
		r.Token = token.String
		var err error
		if locked.Valid {
			if r.LockedUntil, err = core.ParseTime(locked.String); err != nil {
				return nil, err
			}
		}
		if r.UpdatedAt, err = core.ParseTime(updated); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// scanned holds the columns that ScanRecordsN and ScanClaimed both read and
// decode the same way; reused from row to row.
type scanned struct {
	kind, status, avail, created string
	key, headers, lastE          sql.NullString
	payload                      []byte
}

// decode fills r from c's columns.
func (c *scanned) decode(r *Record) error {
	r.Kind, r.Status, r.Key, r.LastError = ports.MessageKind(c.kind), ports.MessageStatus(c.status), c.key.String, c.lastE.String
	r.Payload = c.payload
	if r.Payload == nil {
		r.Payload = []byte{} // a NOT NULL column: empty, never nil
	}
	c.payload = nil // the next row scans into a fresh slice
	if c.headers.Valid && c.headers.String != "" {
		if err := json.Unmarshal([]byte(c.headers.String), &r.Headers); err != nil {
			return fmt.Errorf("message %s: decode headers: %w", r.ID, err)
		}
	}
	var err error
	if r.AvailableAt, err = core.ParseTime(c.avail); err != nil {
		return err
	}
	r.CreatedAt, err = core.ParseTime(c.created)
	return err
}

// ClaimColumns is what a claim needs back, in ScanClaimed's order: Columns
// without the three that the claim itself set (locked_until, claim_token and
// updated_at, known from its ClaimParams), to read and decode less per row.
const ClaimColumns = "id, kind, topic, ordering_key, payload, headers, status, attempts, max_attempts, available_at, last_error, created_at"

// ScanClaimed reads the rows of a claim that returned ClaimColumns, made
// with p, and closes them, into a recycled buffer (see releaseRecords). The records are those ScanRecords would read
// from Columns: a claimed row's lease ends at p.LockedUntil and its token is
// p.TokenPrefix + ID; a row the claim dead-lettered has neither; both were
// updated at p.Now.
func ScanClaimed(rows *sql.Rows, p ClaimParams) ([]Record, error) {
	defer rows.Close()
	var (
		out           []Record
		c             scanned
		until, update time.Time
	)
	for rows.Next() {
		var r Record
		if err := rows.Scan(&r.ID, &c.kind, &r.Topic, &c.key, &c.payload, &c.headers, &c.status, &r.Attempts, &r.MaxAttempts,
			&c.avail, &c.lastE, &c.created); err != nil {
			return nil, err
		}
		if out == nil {
			out = recordBuf(max(p.Limit, 1)) // on the first row: an empty claim takes nothing
			// The claim's own times, parsed once per claim.
			var err error
			if update, err = core.ParseTime(p.Now); err != nil {
				return nil, err
			}
			if until, err = core.ParseTime(p.LockedUntil); err != nil {
				return nil, err
			}
		}
		if err := c.decode(&r); err != nil {
			return nil, err
		}
		r.UpdatedAt = update
		if r.Status != ports.StatusDead {
			r.LockedUntil, r.Token = until, p.TokenPrefix+r.ID
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ApplyClaimSet turns rows read with ScanClaimed before ClaimSet(p) was
// applied to them (read under a lock, so unchanged since) into the rows it
// wrote: ScanClaimed took each one as claimed, which ClaimSet makes every
// row short of its final attempt (one more attempt); a row at its final
// attempt ClaimSet dead-letters instead (no lease, no token,
// LeaseExpiredError).
func ApplyClaimSet(recs []Record) {
	for i := range recs {
		r := &recs[i]
		if r.Attempts >= r.MaxAttempts {
			r.Status, r.LockedUntil, r.Token, r.LastError = ports.StatusDead, time.Time{}, "", LeaseExpiredError
			continue
		}
		r.Attempts++
	}
}

func parseOptTime(s sql.NullString) (time.Time, error) {
	if !s.Valid || s.String == "" {
		return time.Time{}, nil
	}
	return core.ParseTime(s.String)
}
