// Package idemsql is the idempotency store shared by every provider. A
// Dialect supplies the DDL, the insert-or-ignore clause and the locking read.
package idemsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/internal/txn"
)

// Defaults.
const (
	DefaultTableName = "idempotency_records"
	DefaultTTL       = 24 * time.Hour
	DefaultLease     = time.Minute
	// reserveRounds bounds the reserve loop when records vanish or change
	// between statements (a concurrent Fail, expiry or takeover).
	reserveRounds = 8
)

const (
	statusInProgress = "in_progress"
	statusCompleted  = "completed"
)

// Options configures a store. The zero value means defaults.
type Options struct {
	// TableName is a validated identifier, optionally schema-qualified.
	// Default "idempotency_records".
	TableName string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TTL is how long records are kept when a request gives none. Default 24h.
	TTL time.Duration
	// Lease is how long a reservation is held when a request gives none.
	// Default 1 minute.
	Lease time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.TableName == "" {
		o.TableName = DefaultTableName
	}
	if o.TTL == 0 {
		o.TTL = DefaultTTL
	}
	if o.Lease == 0 {
		o.Lease = DefaultLease
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func (o *Options) validate() error {
	if err := core.ValidateIdentifier(o.TableName); err != nil {
		return fmt.Errorf("idempotency table name: %w", err)
	}
	if o.TTL < 0 || o.Lease < 0 {
		return core.Invalidf("idempotency TTL %v and Lease %v must not be negative", o.TTL, o.Lease)
	}
	return nil
}

// Names are the quoted names of one table.
type Names struct {
	Raw, Table, Schema, Base string
}

// NewNames derives Names with quote.
func NewNames(table string, quote func(string) string) Names {
	n := Names{Raw: table, Base: table}
	if i := strings.IndexByte(table, '.'); i >= 0 {
		n.Schema = quote(table[:i]) + "."
		n.Base = table[i+1:]
	}
	n.Table = n.Schema + quote(n.Base)
	return n
}

// Dialect supplies what differs between databases.
type Dialect struct {
	Name      string
	Quote     func(string) string
	Translate func(error) error
	Setup     func(n Names) []string
	// InsertIgnore is appended to the INSERT so a duplicate storage_key
	// inserts nothing and reports 0 rows affected.
	InsertIgnore string
	// InsertVerb starts the INSERT; "" means "INSERT". MySQL sets
	// "INSERT IGNORE" (and no InsertIgnore clause): its ON DUPLICATE KEY
	// UPDATE no-op reports 1 row under CLIENT_FOUND_ROWS, which the store
	// would read as a fresh reservation.
	InsertVerb string
	// LockingRead is appended to the winner's SELECT so that a snapshot
	// (MySQL REPEATABLE READ) never hides a committed record ("" for SQLite).
	LockingRead string
	// WriteGate, when set, returns the gate that the store's writes on db
	// pass through (nil: none, e.g. when db is a transaction). See txn.Gate.
	WriteGate func(db bun.IDB) *txn.Gate
}

// Store implements ports.Idempotency.
type Store struct {
	db   bun.IDB
	gate *txn.Gate // the write gate of db; nil for none
	opts Options
	d    *Dialect
	q    queries
}

type queries struct {
	insert, selectWinner, deleteExpired, takeover, complete, fail string
}

// New returns a store on db.
func New(db bun.IDB, opts Options, d *Dialect) (*Store, error) {
	if db == nil {
		return nil, core.Invalidf("idempotency: nil database handle")
	}
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	t := NewNames(opts.TableName, d.Quote).Table
	verb := d.InsertVerb
	if verb == "" {
		verb = "INSERT"
	}
	return &Store{db: db, gate: txn.GateOf(d.WriteGate, db), opts: opts, d: d, q: queries{
		insert: verb + " INTO " + t + " (storage_key, namespace, idem_key, scope, fingerprint, status, token, result, locked_until, expires_at, created_at, updated_at)" +
			" VALUES (?, ?, ?, ?, ?, '" + statusInProgress + "', ?, NULL, ?, ?, ?, ?) " + d.InsertIgnore,
		selectWinner:  "SELECT fingerprint, status, token, result, locked_until, expires_at FROM " + t + " WHERE storage_key = ?" + d.LockingRead,
		deleteExpired: "DELETE FROM " + t + " WHERE storage_key = ? AND expires_at <= ?",
		takeover: "UPDATE " + t + " SET token = ?, locked_until = ?, expires_at = ?, updated_at = ?" +
			" WHERE storage_key = ? AND token = ? AND status = '" + statusInProgress + "'",
		complete: "UPDATE " + t + " SET status = '" + statusCompleted + "', result = ?, locked_until = NULL, updated_at = ?" +
			" WHERE storage_key = ? AND token = ? AND status = '" + statusInProgress + "'",
		fail: "DELETE FROM " + t + " WHERE storage_key = ? AND token = ? AND status = '" + statusInProgress + "'",
	}}, nil
}

// SetupStatements returns the DDL for opts.
func SetupStatements(opts Options, d *Dialect) ([]string, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	return d.Setup(NewNames(opts.TableName, d.Quote)), nil
}

// WithDB returns a copy bound to db (typically a transaction).
func (s *Store) WithDB(db bun.IDB) *Store {
	c := *s
	c.db = db
	c.gate = txn.GateOf(s.d.WriteGate, db)
	return &c
}

func (s *Store) wrap(op string, err error) error {
	return fmt.Errorf("idempotency %s: %w", op, s.d.Translate(err))
}

// Reserve implements ports.Idempotency.
func (s *Store) Reserve(ctx context.Context, req ports.ReserveRequest) (ports.Reservation, error) {
	scopeKey, err := core.ValidateIdempotencyKey(req.IdempotencyKey)
	if err != nil {
		return ports.Reservation{}, fmt.Errorf("idempotency reserve: %w", err)
	}
	if req.Fingerprint == "" {
		return ports.Reservation{}, fmt.Errorf("idempotency reserve: %w", core.Invalidf("empty fingerprint; derive one from the request (core.Fingerprint)"))
	}
	if err := core.CheckLength("idempotency fingerprint", req.Fingerprint); err != nil {
		return ports.Reservation{}, fmt.Errorf("idempotency reserve: %w", err)
	}
	if req.Lease < 0 || req.TTL < 0 {
		return ports.Reservation{}, fmt.Errorf("idempotency reserve: %w", core.Invalidf("Lease %v and TTL %v must not be negative", req.Lease, req.TTL))
	}
	lease, ttl := req.Lease, req.TTL
	if lease == 0 {
		lease = s.opts.Lease
	}
	if ttl == 0 {
		ttl = s.opts.TTL
	}
	sk := core.StorageKey(req.Namespace, req.Key, scopeKey)
	res := ports.Reservation{Namespace: req.Namespace, Key: req.Key, ScopeKey: scopeKey}
	ctx, leave, err := s.gate.EnterFor(ctx, "idempotency", "reserve")
	if err != nil {
		return res, err
	}
	defer leave()

	for round := 0; round < reserveRounds; round++ {
		now := core.Clock(s.opts.Now).Now()
		nowS := core.FormatTime(now)
		token := core.NewToken()
		lockedUntil, expiresAt := now.Add(lease), now.Add(ttl)
		r, err := s.db.ExecContext(ctx, s.q.insert, sk, req.Namespace, req.Key, scopeKey, req.Fingerprint, token,
			core.FormatTime(lockedUntil), core.FormatTime(expiresAt), nowS, nowS)
		if err != nil {
			return res, s.wrap("reserve", err)
		}
		if n, err := r.RowsAffected(); err != nil {
			return res, s.wrap("reserve", err)
		} else if n == 1 {
			res.Status, res.Token, res.LockedUntil, res.ExpiresAt = ports.Reserved, token, lockedUntil, expiresAt
			return res, nil
		}

		var (
			fp, status, cur   string
			result, lockedS   sql.NullString
			expiresS          string
			recLocked, recExp time.Time
		)
		err = s.db.QueryRowContext(ctx, s.q.selectWinner, sk).Scan(&fp, &status, &cur, &result, &lockedS, &expiresS)
		if errors.Is(err, sql.ErrNoRows) {
			continue // released or expired meanwhile: try the insert again
		}
		if err != nil {
			return res, s.wrap("reserve", err)
		}
		if recExp, err = core.ParseTime(expiresS); err != nil {
			return res, s.wrap("reserve", err)
		}
		if lockedS.Valid {
			if recLocked, err = core.ParseTime(lockedS.String); err != nil {
				return res, s.wrap("reserve", err)
			}
		}
		if !recExp.After(now) {
			if _, err := s.db.ExecContext(ctx, s.q.deleteExpired, sk, nowS); err != nil {
				return res, s.wrap("reserve: remove expired record", err)
			}
			continue
		}
		res.ExpiresAt = recExp
		switch {
		case fp != req.Fingerprint:
			res.Status = ports.FingerprintMismatch
			return res, nil
		case status == statusCompleted:
			res.Status, res.Result = ports.Replay, json.RawMessage(result.String)
			return res, nil
		case recLocked.After(now):
			res.Status, res.LockedUntil = ports.InProgress, recLocked
			return res, nil
		}
		// An abandoned reservation: take it over, fenced on its old token.
		r, err = s.db.ExecContext(ctx, s.q.takeover, token, core.FormatTime(lockedUntil), core.FormatTime(expiresAt), nowS, sk, cur)
		if err != nil {
			return res, s.wrap("reserve: take over", err)
		}
		if n, err := r.RowsAffected(); err != nil {
			return res, s.wrap("reserve: take over", err)
		} else if n == 1 {
			s.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "idempotency reservation taken over after its lease expired",
				slog.String("namespace", req.Namespace))
			res.Status, res.Token, res.TakenOver, res.LockedUntil, res.ExpiresAt = ports.Reserved, token, true, lockedUntil, expiresAt
			return res, nil
		}
	}
	return res, fmt.Errorf("idempotency reserve of namespace %q key %q: the record kept changing under contention; retry: %w",
		req.Namespace, req.Key, ports.ErrRetryable)
}

// Complete implements ports.Idempotency.
func (s *Store) Complete(ctx context.Context, r ports.Reservation, result json.RawMessage) error {
	if len(result) == 0 || !json.Valid(result) {
		return fmt.Errorf("idempotency complete: %w", core.Invalidf("result must be valid JSON (namespace %q key %q); the reservation is still held", r.Namespace, r.Key))
	}
	// The record keeps the expiry set at Reserve (reservation time + TTL).
	return s.mutate(ctx, "complete", r, s.q.complete, string(result), core.FormatTime(core.Clock(s.opts.Now).Now()))
}

// Fail implements ports.Idempotency.
func (s *Store) Fail(ctx context.Context, r ports.Reservation) error {
	return s.mutate(ctx, "fail", r, s.q.fail)
}

func (s *Store) mutate(ctx context.Context, action string, r ports.Reservation, query string, args ...any) error {
	mutErr := &ports.IdempotencyMutationError{Action: action, Namespace: r.Namespace, Key: r.Key, ScopeKey: r.ScopeKey}
	if r.Token == "" || r.Status != ports.Reserved {
		return mutErr
	}
	sk := core.StorageKey(r.Namespace, r.Key, r.ScopeKey)
	ctx, leave, err := s.gate.EnterFor(ctx, "idempotency", action)
	if err != nil {
		return err
	}
	defer leave()
	res, err := s.db.ExecContext(ctx, query, append(args, sk, r.Token)...)
	if err != nil {
		return s.wrap(action, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap(action, err)
	}
	if n == 0 {
		return mutErr
	}
	return nil
}
