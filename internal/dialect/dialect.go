// Package dialect is where provider packages register their database
// strategy, and where the wharf package finds it: by URL scheme (Open) or
// by bun's dialect (NewDriver). A provider registers itself in its init
// function, so importing it is what makes its databases available.
package dialect

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/wharf-go/wharf/internal/check"
	"github.com/wharf-go/wharf/internal/idemsql"
	"github.com/wharf-go/wharf/internal/migrations"
	"github.com/wharf-go/wharf/internal/outboxsql"
	"github.com/wharf-go/wharf/internal/sqlbase"
)

// Dialect is one database's strategy for one driver: the outbox's and the
// idempotency store's, and the driver's own operations.
type Dialect interface {
	outboxsql.Dialect
	idemsql.Dialect
	// Migrate runs apply on one connection of db, serialised with every
	// other Migrate of the database (from any process), in one transaction
	// where the database runs DDL in transactions (apply's error rolls it
	// back). apply gets the connection or transaction to run on.
	Migrate(ctx context.Context, db *bun.DB, apply func(ctx context.Context, conn bun.IDB) error) error
	// Migrations returns the dialect's versioned migrations (the set of
	// its Entry).
	Migrations() *migrations.Set
	// CheckSchema reports a missing table or index of the outbox (q) or the
	// idempotency store (idem), naming it.
	CheckSchema(ctx context.Context, db bun.IDB, q *outboxsql.Queries, idem sqlbase.Names) error
	// Close releases what the dialect holds for its driver (connections of
	// its own, goroutines).
	Close() error
}

// Pool is a resolved pool configuration: every value is what
// database/sql's setter of the same name takes.
type Pool struct {
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	ConnMaxIdleTime time.Duration
}

// OpenConfig is what a provider opens a pool with.
type OpenConfig struct {
	Pool Pool
	// Logger receives what the database driver itself logs (at debug
	// level: the errors it reports reach wharf's callers anyway). Never nil.
	Logger *slog.Logger
}

// Listen configures a dialect's server notifications (PostgreSQL).
type Listen struct {
	URL             string
	ApplicationName string
	PingInterval    time.Duration
}

// Config is what a dialect is built with.
type Config struct {
	// Logger is never nil.
	Logger *slog.Logger
	Listen Listen
}

// Entry is a provider's registration.
type Entry struct {
	// Name is the dialect's name: "sqlite", "postgres" or "mysql".
	Name string
	// Bun is bun's name of the dialect, matched against *bun.DB.Dialect().
	Bun dialect.Name
	// Schemes are the URL schemes Open accepts for it ("postgres", ...).
	Schemes []string
	// Example is a sample URL for error messages.
	Example string
	// Translate classifies a driver error (as the dialect's Translate).
	Translate func(err error) error
	// Check validates url as this dialect's URL; its errors say what the
	// URL must look like and never contain a password.
	Check func(url string) error
	// Open opens and pings a pool on url.
	Open func(ctx context.Context, url string, cfg OpenConfig) (*bun.DB, error)
	// New builds the dialect of one driver on db; an invalid cfg is an
	// error matching ports.ErrInvalidArgument.
	New func(db *bun.DB, cfg Config) (Dialect, error)
	// Migrations are the dialect's versioned migrations, which render and
	// export without a database.
	Migrations *migrations.Set
}

var registry struct {
	mu      sync.RWMutex
	entries []*Entry
}

// Register adds a provider; a second registration of a name replaces
// nothing and panics (a programming error in a provider's init).
func Register(e *Entry) {
	registry.mu.Lock()
	defer registry.mu.Unlock()
	for _, o := range registry.entries {
		if o.Name == e.Name {
			panic("wharf: dialect " + e.Name + " registered twice")
		}
	}
	registry.entries = append(registry.entries, e)
}

// Scheme returns the scheme of url ("file" for "file:app.db", "postgres"
// for "postgres://...") and whether it has one.
func Scheme(url string) (string, bool) {
	i := strings.IndexByte(url, ':')
	if i <= 0 {
		return "", false
	}
	s := strings.ToLower(url[:i])
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return "", false
		}
	}
	return s, true
}

// ByURL returns the registered provider of url's scheme.
func ByURL(url string) (*Entry, error) {
	scheme, ok := Scheme(url)
	if url == ":memory:" {
		scheme, ok = "file", true
	}
	if !ok {
		return nil, check.Invalidf("database URL has no scheme; use %s", examples())
	}
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	for _, e := range registry.entries {
		if slices.Contains(e.Schemes, scheme) {
			return e, nil
		}
	}
	return nil, check.Invalidf("no wharf provider for URL scheme %q: %s", scheme, missing(scheme))
}

// ByName returns the registered provider called name, or an error saying
// which package to import.
func ByName(name string) (*Entry, error) {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	for _, e := range registry.entries {
		if e.Name == name {
			return e, nil
		}
	}
	return nil, check.Invalidf("no wharf provider %q: import github.com/wharf-go/wharf/providers/%s", name, name)
}

// ByBun returns the registered provider of bun's dialect name.
func ByBun(name dialect.Name) (*Entry, error) {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	for _, e := range registry.entries {
		if e.Bun == name {
			return e, nil
		}
	}
	return nil, check.Invalidf("no wharf provider for bun dialect %s: import the provider package (github.com/wharf-go/wharf/providers/sqlite, .../postgres or .../mysql)", name)
}

// knownSchemes names the provider package of each scheme, for the error
// of a scheme whose provider is not linked in.
var knownSchemes = map[string]string{
	"file": "sqlite", "sqlite": "sqlite", "sqlite3": "sqlite",
	"postgres": "postgres", "postgresql": "postgres",
	"mysql": "mysql", "mariadb": "mysql",
}

func missing(scheme string) string {
	if p, ok := knownSchemes[scheme]; ok {
		return fmt.Sprintf("import the provider package github.com/wharf-go/wharf/providers/%s (a blank import is enough)", p)
	}
	return "use " + examples()
}

// Example returns the sample URL of the provider called name, or of every
// provider when name is "" or unknown.
func Example(name string) string {
	if e, err := ByName(name); err == nil {
		return e.Example
	}
	return examples()
}

func examples() string {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	var ex []string
	for _, e := range registry.entries {
		ex = append(ex, e.Example)
	}
	sort.Strings(ex)
	if len(ex) == 0 {
		return "file:app.db, postgres://user:password@host:5432/db or mysql://user:password@host:3306/db, after importing the provider package"
	}
	return strings.Join(ex, ", ")
}

// Table is a table a driver needs and the indexes it needs on it.
type Table struct {
	Names   sqlbase.Names
	Indexes []string
}

// Catalog reports whether a table exists and which indexes it has.
type Catalog func(ctx context.Context, n sqlbase.Names) (exists bool, indexes map[string]struct{}, err error)

// CheckTables reports the first table or index of want that catalog does
// not find, naming it and how to create it.
func CheckTables(ctx context.Context, catalog Catalog, want ...Table) error {
	for _, t := range want {
		exists, have, err := catalog(ctx, t.Names)
		if err != nil {
			return fmt.Errorf("read the catalog of table %s: %w", t.Names.Raw, err)
		}
		if !exists {
			return fmt.Errorf("table %s does not exist; run Migrate (or wharf migrate up)", t.Names.Raw)
		}
		for _, ix := range t.Indexes {
			if _, ok := have[ix]; !ok {
				return fmt.Errorf("index %s of table %s does not exist; run Migrate (or wharf migrate up)", ix, t.Names.Raw)
			}
		}
	}
	return nil
}

// ApplyPool applies p to db.
func ApplyPool(db *sql.DB, p Pool) {
	db.SetMaxOpenConns(p.MaxOpenConns)
	db.SetMaxIdleConns(p.MaxIdleConns)
	db.SetConnMaxLifetime(p.ConnMaxLifetime)
	db.SetConnMaxIdleTime(p.ConnMaxIdleTime)
}
