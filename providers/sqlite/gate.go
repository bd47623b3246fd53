package sqlite

import (
	"database/sql"
	"runtime"
	"sync"
	"time"
	"weak"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/providers/internal/txn"
)

// gatePatience bounds a wait for the write gate; after it the writer goes
// on to SQLite's own busy handler (see txn.Gate).
const gatePatience = DefaultBusyTimeoutMS * time.Millisecond

// gates holds one write gate per *sql.DB, keyed weakly so that a closed and
// unreachable database drops its gate.
var gates sync.Map // weak.Pointer[sql.DB] -> *txn.Gate

// writeGate returns the write gate of db when db is a root handle (*bun.DB),
// and nil for a transaction or a connection: whoever began that transaction
// already holds SQLite's write lock or queues for it there.
func writeGate(db bun.IDB) *txn.Gate {
	if bdb, ok := db.(*bun.DB); ok && bdb != nil {
		return gateFor(bdb.DB)
	}
	return nil
}

// gateFor returns the write gate shared by everything the provider builds on
// sqldb.
func gateFor(sqldb *sql.DB) *txn.Gate {
	if sqldb == nil {
		return nil
	}
	k := weak.Make(sqldb)
	if g, ok := gates.Load(k); ok {
		return g.(*txn.Gate)
	}
	g, loaded := gates.LoadOrStore(k, txn.NewGate(gatePatience))
	if !loaded {
		runtime.AddCleanup(sqldb, func(k weak.Pointer[sql.DB]) { gates.Delete(k) }, k)
	}
	return g.(*txn.Gate)
}
