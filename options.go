package wharf

import (
	"log/slog"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/ports"
)

// Options configure a Driver. The zero value means the defaults on every
// dialect; a negative duration or count where none makes sense is an
// error matching ports.ErrInvalidArgument.
type Options struct {
	// Outbox configures the outbox table.
	Outbox OutboxOptions
	// Idempotency configures the idempotency table.
	Idempotency IdempotencyOptions
	// Migrations configures the schema version table (see Driver.Migrate).
	Migrations MigrationOptions
	// Pool configures the connection pool that Open opens. NewDriver leaves
	// the pool it is given as it is.
	Pool PoolOptions
	// Listen configures the connection that carries the database's
	// notifications to relays in other processes (PostgreSQL LISTEN). Other
	// dialects ignore it.
	Listen ListenOptions
	// EventKey, when set, derives the ordering key of every event recorded
	// through Tx.Events (for example the aggregate's ID, so that one
	// aggregate's events are delivered in order).
	EventKey func(ports.Event) string
	// Now is the clock of every time the driver stores or compares: message
	// availability and leases, idempotency leases and expiry, and the
	// OccurredAt of events recorded in a unit of work. nil means time.Now.
	// Give relays the same clock (relay.Options.Now).
	Now func() time.Time
	// Logger receives the driver's logs (never query parameters or
	// payloads); nil means slog.Default at warn level and above.
	Logger *slog.Logger
	// QueryLog, when enabled, logs every statement of the pool (the
	// application's own too) through slog; parameter values are redacted
	// unless QueryLog.ShowParameters is set.
	QueryLog QueryLogOptions
	// Hooks observe units of work, enqueues, claims and reservations for
	// instrumentation (see core.Hooks and the otelwharf module); Enqueue
	// writes the trace context into each message's headers through
	// Hooks.Inject. Give relays the same Hooks.
	Hooks core.Hooks
}

// OutboxOptions configure the outbox. The zero value means the defaults.
type OutboxOptions struct {
	// TableName is the outbox table: letters, digits and underscores,
	// optionally qualified by a schema (PostgreSQL) or database (MySQL) as
	// "schema.table". Default "outbox_messages".
	TableName string
	// DefaultMaxAttempts is the MaxAttempts of messages enqueued with 0.
	// Default 10.
	DefaultMaxAttempts int
}

// IdempotencyOptions configure the idempotency store. The zero value means
// the defaults.
type IdempotencyOptions struct {
	// TableName is the idempotency table, named like OutboxOptions.TableName.
	// Default "idempotency_records".
	TableName string
	// TTL is how long a record (and its stored result) is kept when a
	// request gives none. Default 24h.
	TTL time.Duration
	// Lease is how long a reservation is held when a request gives none.
	// Default 1 minute.
	Lease time.Duration
}

// Pool defaults: the values that zero PoolOptions fields stand for, on
// every dialect.
const (
	// DefaultMaxOpenConns bounds the open connections of a pool.
	DefaultMaxOpenConns = 20
	// DefaultConnMaxLifetime recycles connections, so that they follow
	// server fail-overs and DNS changes.
	DefaultConnMaxLifetime = 30 * time.Minute
	// DefaultConnMaxIdleTime is below the 5 minutes after which some
	// proxies and firewalls drop idle connections.
	DefaultConnMaxIdleTime = 3 * time.Minute
)

// PoolOptions configure the pool Open opens, with one meaning on every
// dialect: zero is the default, and a negative value lifts the bound (no
// limit, never closed) — except MaxIdleConns, whose negative value keeps
// no idle connection.
type PoolOptions struct {
	// MaxOpenConns bounds the open connections. Default
	// DefaultMaxOpenConns. An in-memory SQLite database always has one.
	MaxOpenConns int
	// MaxIdleConns bounds the idle connections kept. Default MaxOpenConns
	// when that is bounded, DefaultMaxOpenConns when it is not; negative
	// keeps none.
	MaxIdleConns int
	// ConnMaxLifetime closes connections older than this. Default
	// DefaultConnMaxLifetime.
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes connections idle for longer than this.
	// Default DefaultConnMaxIdleTime.
	ConnMaxIdleTime time.Duration
}

// resolve turns o into the values database/sql's setters take.
func (o PoolOptions) resolve() dialect.Pool {
	p := dialect.Pool{
		MaxOpenConns:    orDefault(o.MaxOpenConns, DefaultMaxOpenConns),
		ConnMaxLifetime: orDefault(o.ConnMaxLifetime, DefaultConnMaxLifetime),
		ConnMaxIdleTime: orDefault(o.ConnMaxIdleTime, DefaultConnMaxIdleTime),
	}
	switch {
	case o.MaxIdleConns == 0 && p.MaxOpenConns > 0:
		p.MaxIdleConns = p.MaxOpenConns
	case o.MaxIdleConns == 0:
		p.MaxIdleConns = DefaultMaxOpenConns
	case o.MaxIdleConns < 0:
		p.MaxIdleConns = -1 // database/sql: keep none
	default:
		p.MaxIdleConns = o.MaxIdleConns
	}
	return p
}

// orDefault maps zero to def and a negative value to 0, which
// database/sql's setters read as "no limit" or "never".
func orDefault[N int | time.Duration](v, def N) N {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// DefaultListenPingInterval is how long the notification connection may
// stay silent before it is pinged.
const DefaultListenPingInterval = 30 * time.Second

// ListenOptions configure the connection that carries database
// notifications to relays (PostgreSQL LISTEN/NOTIFY).
type ListenOptions struct {
	// URL of the server for the notification connection. Empty means the
	// settings of the driver's own pool (same host, credentials, TLS and
	// run-time parameters). Set it when the pool goes through a
	// transaction-pooling proxy such as PgBouncer, where LISTEN does not
	// work, to reach the server directly.
	URL string
	// ApplicationName of the connection, as pg_stat_activity shows it.
	// Default "wharf-outbox-listener".
	ApplicationName string
	// PingInterval is how long the connection may stay silent before it is
	// pinged, so that a dead connection is noticed and replaced. Default
	// DefaultListenPingInterval.
	PingInterval time.Duration
}

// validate checks what the dialect packages do not.
func (o *Options) validate() error {
	switch {
	case o.Listen.PingInterval < 0:
		return check.Invalidf("Listen.PingInterval %v is negative; use 0 for the default", o.Listen.PingInterval)
	case o.Idempotency.TTL < 0 || o.Idempotency.Lease < 0:
		return check.Invalidf("Idempotency.TTL %v and Idempotency.Lease %v must not be negative; use 0 for the defaults", o.Idempotency.TTL, o.Idempotency.Lease)
	case o.Outbox.DefaultMaxAttempts < 0:
		return check.Invalidf("Outbox.DefaultMaxAttempts %d is negative; use 0 for the default", o.Outbox.DefaultMaxAttempts)
	}
	return o.Migrations.validate(o)
}

func (o *Options) listen() dialect.Listen {
	l := dialect.Listen{URL: o.Listen.URL, ApplicationName: o.Listen.ApplicationName, PingInterval: o.Listen.PingInterval}
	if l.ApplicationName == "" {
		l.ApplicationName = "wharf-outbox-listener"
	}
	if l.PingInterval == 0 {
		l.PingInterval = DefaultListenPingInterval
	}
	return l
}

// QueryLogOptions configure the query log: a bun query hook on the pool
// that logs each statement with its duration, rows affected, parameter
// count, the wharf component and operation that ran it ("port", e.g.
// "outbox.claim"; "application" for the application's own), the dialect,
// and a failed statement's error with its class ("retryable", "conflict",
// "lock", "canceled", "timeout", "error"). Parameter values never appear,
// in the SQL text either (bun interpolates them: the text is logged with
// placeholders, or with every literal replaced by "?"), unless
// ShowParameters is set.
type QueryLogOptions struct {
	// Enabled switches the query log on.
	Enabled bool
	// Logger receives the records; nil means Options.Logger.
	Logger *slog.Logger
	// Level is the level of an ordinary statement's record; nil means
	// slog.LevelDebug. Failed statements, and slow ones, are logged at warn
	// level (or Level, if higher).
	Level slog.Leveler
	// SlowThreshold, when positive, logs statements that took at least
	// this long at warn level.
	SlowThreshold time.Duration
	// ShowParameters logs statements with their values. For development
	// only: values may be personal data or secrets.
	ShowParameters bool
}

// How claims find their messages (the claim cursor, docs/architecture.md):
// a claim scans the outbox from where the last one ended, less ClaimWindow,
// so that it does not walk the index entries of messages delivered before
// (which a long transaction elsewhere in the database keeps alive). A
// message that becomes claimable further back without this process knowing
// (a lease that expired, a release or a late commit by another process; a
// late commit of a unit of work of this process moves the cursor back) is
// found by a scan from the start, made at least every ClaimRescanInterval
// of the driver's clock: that is its extra delivery latency at most.
const (
	ClaimWindow         = 250 * time.Millisecond
	ClaimRescanInterval = time.Second
)
