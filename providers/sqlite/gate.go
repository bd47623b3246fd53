package sqlite

import (
	"database/sql"
	"runtime"
	"sync"
	"time"
	"weak"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/internal/sqlbase"
)

// gatePatience bounds a wait for the write gate; after it the writer goes
// on to SQLite's own busy handler (see sqlbase.Gate).
const gatePatience = DefaultBusyTimeoutMS * time.Millisecond

// gates holds one write gate per *sql.DB, keyed weakly so that a closed and
// unreachable database drops its gate.
var gates sync.Map // weak.Pointer[sql.DB] -> *sqlbase.Gate

// gateOf returns the write gate of db when db is a root handle (*bun.DB),
// and nil for a transaction or a connection: whoever began that transaction
// already holds SQLite's write lock or queues for it there.
func gateOf(db bun.IDB) *sqlbase.Gate {
	if bdb, ok := db.(*bun.DB); ok && bdb != nil {
		return gateFor(bdb.DB)
	}
	return nil
}

// gateFor returns the write gate shared by everything the provider builds on
// sqldb.
func gateFor(sqldb *sql.DB) *sqlbase.Gate {
	if sqldb == nil {
		return nil
	}
	k := weak.Make(sqldb)
	if g, ok := gates.Load(k); ok {
		return g.(*sqlbase.Gate)
	}
	g, loaded := gates.LoadOrStore(k, sqlbase.NewGate(gatePatience))
	if !loaded {
		runtime.AddCleanup(sqldb, func(k weak.Pointer[sql.DB]) { gates.Delete(k) }, k)
	}
	return g.(*sqlbase.Gate)
}
