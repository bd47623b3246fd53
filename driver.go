package wharf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/dialect"
	"github.com/wharf-go/wharf/internal/idemsql"
	"github.com/wharf-go/wharf/internal/logging"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/querylog"
	"github.com/wharf-go/wharf/ports"
)

// Outbox is a driver's outbox: the port, its admin interface, and
// notifications that wake relays (in this process at once on every
// dialect; from other processes where the database can tell).
type Outbox interface {
	ports.Outbox
	ports.OutboxAdmin
	ports.OutboxNotifier
}

// Idempotency is a driver's idempotency store and its admin interface
// (stats, listing, purge of expired records; see Maintainer).
type Idempotency interface {
	ports.Idempotency
	ports.IdempotencyAdmin
}

// Driver is wharf on one database: its outbox, its idempotency store, their
// migrations, and the transactions of units of work (NewUnitOfWork). Create
// it with Open (or a provider's Open) from a URL, or with NewDriver on a
// pool you opened. It is safe for concurrent use.
type Driver struct {
	db      *bun.DB
	owned   bool // Close closes db
	name    string
	d       dialect.Dialect
	outbox  *outboxsql.Outbox
	idem    *idemsql.Store
	eventFn func(ports.Event) string
	now     func() time.Time
	log     *slog.Logger
	hooks   core.Hooks
	// versions is Options.Migrations.TableName.
	versions string
}

// Open opens a pool on url, pings it and returns a driver that owns it
// (Close closes it). The URL's scheme picks the dialect:
//
//	file:app.db, sqlite:app.db, :memory:         SQLite (providers/sqlite)
//	postgres://user:password@host:5432/db        PostgreSQL (providers/postgres)
//	mysql://user:password@host:3306/db           MySQL 8.0+ / MariaDB 10.6+ (providers/mysql)
//
// The dialect's provider package must be imported (a blank import is
// enough). A malformed URL, an unknown scheme or invalid options are
// errors matching ports.ErrInvalidArgument; no error repeats a password.
func Open(ctx context.Context, url string, opts Options) (*Driver, error) {
	e, err := dialect.ByURL(url)
	if err != nil {
		return nil, fmt.Errorf("wharf: open: %w", err)
	}
	return open(ctx, e, url, opts)
}

// open opens url with e's provider.
func open(ctx context.Context, e *dialect.Entry, url string, opts Options) (*Driver, error) {
	if err := e.Check(url); err != nil {
		return nil, err
	}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("wharf: open: %w", err)
	}
	db, err := e.Open(ctx, url, dialect.OpenConfig{Pool: opts.Pool.resolve(), Logger: logging.OrDefault(opts.Logger)})
	if err != nil {
		return nil, err
	}
	drv, err := newDriver(e, db, opts)
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	drv.owned = true
	return drv, nil
}

// NewDriver returns a driver on db, a pool opened by the application (bun's
// dialect picks wharf's; its provider package must be imported). Close
// leaves db open. Invalid options are an error matching
// ports.ErrInvalidArgument. The pool must be opened as the provider opens
// its own (see the provider's DSN or ParseURL): Migrate and CheckSchema
// refuse a MySQL pool without clientFoundRows or with NO_BACKSLASH_ESCAPES.
func NewDriver(db *bun.DB, opts Options) (*Driver, error) {
	if db == nil {
		return nil, check.Invalidf("wharf: new driver: nil *bun.DB")
	}
	e, err := dialect.ByBun(db.Dialect().Name())
	if err != nil {
		return nil, fmt.Errorf("wharf: new driver: %w", err)
	}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("wharf: new driver: %w", err)
	}
	return newDriver(e, db, opts)
}

func newDriver(e *dialect.Entry, db *bun.DB, opts Options) (*Driver, error) {
	log := logging.OrDefault(opts.Logger)
	if q := opts.QueryLog; q.Enabled {
		qlog := log
		if q.Logger != nil {
			qlog = q.Logger
		}
		level := slog.LevelDebug
		if q.Level != nil {
			level = q.Level.Level()
		}
		db.AddQueryHook(querylog.New(querylog.Config{Logger: qlog, Dialect: e.Name, Level: level,
			Slow: q.SlowThreshold, ShowParameters: q.ShowParameters, Translate: e.Translate}))
	}
	d, err := e.New(db, dialect.Config{Logger: log, Listen: opts.listen()})
	if err != nil {
		return nil, fmt.Errorf("wharf: %s driver: %w", e.Name, err)
	}
	ob, err := outboxsql.New(db, outboxsql.Config{
		TableName: opts.Outbox.TableName, Now: opts.Now, DefaultMaxAttempts: opts.Outbox.DefaultMaxAttempts, Logger: log,
		Dialect: e.Name, Hooks: opts.Hooks,
	}, d)
	if err == nil {
		var idem *idemsql.Store
		idem, err = idemsql.New(db, idemsql.Config{
			TableName: opts.Idempotency.TableName, Now: opts.Now, TTL: opts.Idempotency.TTL, Lease: opts.Idempotency.Lease, Logger: log,
			Dialect: e.Name, Hooks: opts.Hooks,
		}, d)
		if err == nil {
			return &Driver{db: db, name: e.Name, d: d, outbox: ob, idem: idem, eventFn: opts.EventKey, now: opts.Now, log: log,
				hooks: opts.Hooks, versions: opts.Migrations.TableName}, nil
		}
	}
	return nil, errors.Join(fmt.Errorf("wharf: %s driver: %w", e.Name, err), d.Close())
}

// Dialect returns the dialect's name: "sqlite", "postgres" or "mysql".
func (drv *Driver) Dialect() string { return drv.name }

// DB returns the pool, for the application's own queries.
func (drv *Driver) DB() *bun.DB { return drv.db }

// Outbox returns the outbox on the pool. Inside a transaction use Tx.Outbox
// (from a unit of work, or Bind), so that messages commit with the
// business write.
func (drv *Driver) Outbox() Outbox { return drv.outbox }

// Idempotency returns the idempotency store on the pool. Inside a
// transaction use Tx.Idempotency.
func (drv *Driver) Idempotency() Idempotency { return drv.idem }

// Tx is one transaction and the driver's ports bound to it. A unit of work
// hands one to its build function (see NewUnitOfWork); Bind makes one for a
// transaction the application manages itself.
type Tx struct {
	// DB runs the application's own statements in the transaction.
	DB bun.IDB
	// Outbox enqueues (and administers) within the transaction: its
	// messages commit or roll back with it.
	Outbox Outbox
	// Idempotency reserves keys within the transaction: the record commits
	// with the business write (see core.RunIdempotently).
	Idempotency Idempotency
	// Events records domain events as outbox messages of kind event in the
	// transaction (core.NewOutboxEventRecorder, with Options.EventKey): a
	// relay delivers them after the commit.
	Events ports.EventRecorder
	// AfterCommit records events that the unit of work publishes to
	// UnitOfWorkOptions.EventBus after a successful commit, in process and
	// at most once (not durable: use Events for that). Outside a unit of
	// work it refuses every event.
	AfterCommit ports.EventRecorder
}

// Bind returns the driver's ports bound to db, a transaction (bun.Tx) the
// application began itself, or any other handle. Its AfterCommit refuses
// events (only a unit of work publishes after commit); relays in this
// process wake when messages enqueued through it are found by their next
// poll, or at once when db is the pool itself.
func (drv *Driver) Bind(db bun.IDB) Tx {
	tx, _ := drv.bind(db, notInUnitOfWork)
	return tx
}

var notInUnitOfWork = ports.EventRecorderFunc(func(context.Context, ...ports.Event) error {
	return check.Invalidf("Tx.AfterCommit is only available in a unit of work (NewUnitOfWork); use Tx.Events to record events through the outbox")
})

// bind returns the Tx of db and its outbox.
func (drv *Driver) bind(db bun.IDB, afterCommit ports.EventRecorder) (Tx, *outboxsql.Outbox) {
	ob := drv.outbox.WithDB(db)
	rec, _ := core.NewOutboxEventRecorder(ob, core.OutboxEventRecorderOptions{Key: drv.eventFn, Now: drv.now}) // ob is never nil
	return Tx{DB: db, Outbox: ob, Idempotency: drv.idem.WithDB(db), Events: rec, AfterCommit: afterCommit}, ob
}

// Close stops the driver's own connections and goroutines (the
// notification listener) and, when Open opened the pool, closes it.
func (drv *Driver) Close() error {
	drv.outbox.Close()
	err := drv.d.Close()
	if drv.owned {
		err = errors.Join(err, drv.db.Close())
	}
	return err
}
