// Package idemsql is the idempotency store shared by every provider, and
// its admin interface. A Dialect, implemented by each provider, supplies
// the insert-or-ignore statement and the locking read (the DDL is in the
// providers' migrations).
package idemsql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/querylog"
	"github.com/wharf-go/wharf/internal/sqlbase"
	"github.com/wharf-go/wharf/ports"
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

// Dialect is a provider's idempotency strategy.
type Dialect interface {
	sqlbase.Dialect
	// InsertIgnore renders an INSERT of one row into table (cols, values)
	// that inserts nothing when the storage_key exists, and reports 1 row
	// affected when it inserted and 0 when it did not.
	InsertIgnore(table, cols, values string) string
	// LockingRead follows the SELECT of an existing record, so that a
	// snapshot (MySQL REPEATABLE READ) never hides a committed record; ""
	// where the plain read suffices.
	LockingRead() string
}

// Config configures a store.
type Config struct {
	// TableName is the table's name; "" means DefaultTableName.
	TableName string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TTL is how long records are kept when a request gives none; zero
	// means DefaultTTL.
	TTL time.Duration
	// Lease is how long a reservation is held when a request gives none;
	// zero means DefaultLease.
	Lease time.Duration
	// Logger must not be nil.
	Logger *slog.Logger
	// Dialect names the database for Hooks.
	Dialect string
	// Hooks observe Reserve.
	Hooks core.Hooks
}

// Store implements ports.Idempotency.
type Store struct {
	db   bun.IDB
	gate *sqlbase.Gate // the write gate of db; nil for none
	cfg  Config
	d    Dialect
	n    sqlbase.Names
	q    queries
}

type queries struct {
	insert, selectWinner, deleteExpired, takeover, complete, fail string
}

// New returns a store on db. An invalid configuration is an error matching
// ports.ErrInvalidArgument.
func New(db bun.IDB, cfg Config, d Dialect) (*Store, error) {
	if db == nil {
		return nil, check.Invalidf("idempotency: nil database handle")
	}
	if cfg.TableName == "" {
		cfg.TableName = DefaultTableName
	}
	n, err := sqlbase.NewNames("idempotency", cfg.TableName, d)
	if err != nil {
		return nil, err
	}
	if cfg.TTL < 0 || cfg.Lease < 0 {
		return nil, check.Invalidf("idempotency TTL %v and Lease %v must not be negative (0 means the default)", cfg.TTL, cfg.Lease)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Lease == 0 {
		cfg.Lease = DefaultLease
	}
	t := n.Table
	return &Store{db: db, gate: d.Gate(db), cfg: cfg, d: d, n: n, q: queries{
		insert: d.InsertIgnore(t, "storage_key, namespace, idem_key, scope, fingerprint, status, token, result, locked_until, expires_at, created_at, updated_at",
			"?, ?, ?, ?, ?, '"+statusInProgress+"', ?, NULL, ?, ?, ?, ?"),
		selectWinner:  "SELECT fingerprint, status, token, result, locked_until, expires_at FROM " + t + " WHERE storage_key = ?" + d.LockingRead(),
		deleteExpired: "DELETE FROM " + t + " WHERE storage_key = ? AND expires_at <= ?",
		takeover: "UPDATE " + t + " SET token = ?, locked_until = ?, expires_at = ?, updated_at = ?" +
			" WHERE storage_key = ? AND token = ? AND status = '" + statusInProgress + "'",
		complete: "UPDATE " + t + " SET status = '" + statusCompleted + "', result = ?, locked_until = NULL, updated_at = ?" +
			" WHERE storage_key = ? AND token = ? AND status = '" + statusInProgress + "'",
		fail: "DELETE FROM " + t + " WHERE storage_key = ? AND token = ? AND status = '" + statusInProgress + "'",
	}}, nil
}

// Names returns the table's names.
func (s *Store) Names() sqlbase.Names { return s.n }

// WithDB returns a copy bound to db (typically a transaction).
func (s *Store) WithDB(db bun.IDB) *Store {
	c := *s
	c.db = db
	c.gate = s.d.Gate(db)
	return &c
}

func (s *Store) wrap(op string, err error) error {
	return fmt.Errorf("idempotency %s: %w", op, s.d.Translate(err))
}

// Reserve implements ports.Idempotency.
func (s *Store) Reserve(ctx context.Context, req ports.ReserveRequest) (ports.Reservation, error) {
	ctx, end := s.cfg.Hooks.StartOp(ctx, func() core.Operation {
		return core.Operation{Kind: core.OpReserve, Dialect: s.cfg.Dialect, Table: s.n.Raw, Namespace: req.Namespace}
	})
	res, err := s.reserve(ctx, req)
	e := core.End{Err: err}
	if err == nil {
		e.Outcome = res.Status.String()
	}
	end(e)
	return res, err
}

// reserve is Reserve once observed.
func (s *Store) reserve(ctx context.Context, req ports.ReserveRequest) (ports.Reservation, error) {
	ctx = querylog.WithPort(ctx, "idempotency.reserve")
	scopeKey, err := validateKey(req.IdempotencyKey)
	if err != nil {
		return ports.Reservation{}, fmt.Errorf("idempotency reserve: %w", err)
	}
	if req.Fingerprint == "" {
		return ports.Reservation{}, fmt.Errorf("idempotency reserve: %w", check.Invalidf("empty fingerprint; derive one from the request (core.Fingerprint)"))
	}
	if err := check.Length("idempotency fingerprint", req.Fingerprint); err != nil {
		return ports.Reservation{}, fmt.Errorf("idempotency reserve: %w", err)
	}
	if req.Lease < 0 || req.TTL < 0 {
		return ports.Reservation{}, fmt.Errorf("idempotency reserve: %w", check.Invalidf("Lease %v and TTL %v must not be negative", req.Lease, req.TTL))
	}
	lease, ttl := req.Lease, req.TTL
	if lease == 0 {
		lease = s.cfg.Lease
	}
	if ttl == 0 {
		ttl = s.cfg.TTL
	}
	sk := storageKey(req.Namespace, req.Key, scopeKey)
	res := ports.Reservation{Namespace: req.Namespace, Key: req.Key, ScopeKey: scopeKey}
	ctx, leave, err := s.gate.EnterFor(ctx, "idempotency", "reserve")
	if err != nil {
		return res, err
	}
	defer leave()

	for round := 0; round < reserveRounds; round++ {
		now := core.Clock(s.cfg.Now).Now()
		nowS := core.FormatTime(now)
		token := sqlbase.NewToken()
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
			s.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "idempotency reservation taken over after its lease expired",
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
		return fmt.Errorf("idempotency complete: %w", check.Invalidf("result must be valid JSON (namespace %q key %q); the reservation is still held", r.Namespace, r.Key))
	}
	// The record keeps the expiry set at Reserve (reservation time + TTL).
	return s.mutate(ctx, "complete", r, s.q.complete, string(result), core.FormatTime(core.Clock(s.cfg.Now).Now()))
}

// Fail implements ports.Idempotency.
func (s *Store) Fail(ctx context.Context, r ports.Reservation) error {
	return s.mutate(ctx, "fail", r, s.q.fail)
}

func (s *Store) mutate(ctx context.Context, action string, r ports.Reservation, query string, args ...any) error {
	ctx = querylog.WithPort(ctx, "idempotency."+action)
	mutErr := &ports.IdempotencyMutationError{Action: action, Namespace: r.Namespace, Key: r.Key, ScopeKey: r.ScopeKey}
	if r.Token == "" || r.Status != ports.Reserved {
		return mutErr
	}
	sk := storageKey(r.Namespace, r.Key, r.ScopeKey)
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
