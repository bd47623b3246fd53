// Package sqlbase is what the outbox, the idempotency store and the unit
// of work of every provider share below their own SQL: the Dialect basics
// (quoting, error classification, the write gate), validated table names
// with the index names derived from them, classified database errors and
// claim tokens.
package sqlbase

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/ports"
)

// Dialect is what every provider supplies to every shared component.
type Dialect interface {
	// Name is "sqlite", "postgres" or "mysql".
	Name() string
	// Quote quotes one validated identifier part.
	Quote(part string) string
	// Translate classifies a driver error: the result matches the ports
	// sentinels (wrapped in a *DBError) and still matches the driver's
	// error. Other errors, and errors already classified, come back
	// unchanged.
	Translate(err error) error
	// Gate returns the write gate that writes on db pass through before
	// they reach the database, or nil for none (see Gate).
	Gate(db bun.IDB) *Gate
}

// DBError is a database error classified by a provider's Translate. It
// matches its Kind (a ports sentinel such as ports.ErrDeadlock),
// ports.ErrRetryable when Retryable is set, and the driver's error.
type DBError struct {
	Kind      error
	Retryable bool
	Err       error
}

// Error implements error.
func (e *DBError) Error() string {
	if e.Retryable {
		return fmt.Sprintf("%v (retryable): %v", e.Kind, e.Err)
	}
	return fmt.Sprintf("%v: %v", e.Kind, e.Err)
}

// Unwrap exposes the kind, ports.ErrRetryable when retryable, and the cause.
func (e *DBError) Unwrap() []error {
	if e.Retryable {
		return []error{e.Kind, ports.ErrRetryable, e.Err}
	}
	return []error{e.Kind, e.Err}
}

// Names are the SQL names of one table, derived from a validated table name.
type Names struct {
	// Raw is the validated table name as configured.
	Raw string
	// Table is the quoted, possibly schema-qualified table name.
	Table string
	// Schema is the quoted schema with its dot ("" when unqualified).
	Schema string
	// Base is the unquoted table name without its schema.
	Base string
}

// NewNames validates table (what names it in errors) and derives its names.
func NewNames(what, table string, d Dialect) (Names, error) {
	if err := check.Identifier(table); err != nil {
		return Names{}, fmt.Errorf("%s table name: %w", what, err)
	}
	n := Names{Raw: table, Base: table}
	if i := strings.IndexByte(table, '.'); i >= 0 {
		n.Schema = d.Quote(table[:i]) + "."
		n.Base = table[i+1:]
	}
	n.Table = n.Schema + d.Quote(n.Base)
	return n, nil
}

// Index returns the unquoted name of the table's index with suffix (e.g.
// "_claim_idx"): the table's base name followed by suffix, shortened to
// check.MaxIdentifierLength bytes when it would be longer (the base is cut
// and a hash of the whole base name inserted), so that the indexes of a
// long table name neither exceed the limit nor collide (PostgreSQL would
// otherwise truncate them to one name and skip all but the first).
func (n Names) Index(suffix string) string {
	name := n.Base + suffix
	if len(name) <= check.MaxIdentifierLength {
		return name
	}
	sum := sha256.Sum256([]byte(n.Base))
	hash := "_" + hex.EncodeToString(sum[:4])
	keep := check.MaxIdentifierLength - len(suffix) - len(hash)
	return n.Base[:keep] + hash + suffix
}

// InTx reports whether db is a transaction (bun.Tx), so that what runs on
// it already commits or rolls back as one.
func InTx(db bun.IDB) bool {
	switch db.(type) {
	case bun.Tx, *bun.Tx:
		return true
	}
	return false
}

// NewToken returns 128 random bits as 32 hex characters.
func NewToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// Batches runs batch until it reports no more or fails, and returns the
// total it deleted; a ctx cancelled between batches stops it with the
// count so far, its error naming what ("idempotency purge") and unit
// ("records").
func Batches(ctx context.Context, what, unit string, batch func() (n int64, more bool, err error)) (int64, error) {
	var total int64
	for {
		n, more, err := batch()
		total += n
		if err != nil || !more {
			return total, err
		}
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("%s: stopped after %d %s: %w", what, total, unit, err)
		}
	}
}

// Unreachable reports whether err is a failure to reach the database before
// anything was sent: a failed dial (a refused connection, an unknown host)
// or driver.ErrBadConn, which drivers return only when nothing was sent and
// database/sql has already retried on fresh connections. A cancelled or
// expired context is not: the caller gave up, the database did not.
func Unreachable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) {
		return true
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
