// Package wharf is the entry point of wharf on a database: a Driver opens
// (or wraps) a pool and gives the outbox, the idempotency store, their
// migrations and units of work whose business writes, events and
// idempotency records commit together.
//
//	import (
//		"github.com/wharf-go/wharf"
//		_ "github.com/wharf-go/wharf/providers/sqlite" // or postgres, mysql
//	)
//
//	drv, err := wharf.Open(ctx, "file:app.db", wharf.Options{})
//	err = drv.Migrate(ctx)
//	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (TxPorts, error) {
//		return TxPorts{Orders: NewOrderRepo(tx.DB), Events: tx.Events, Idem: tx.Idempotency}, nil
//	}, wharf.UnitOfWorkOptions{})
//
// The URL's scheme picks the dialect, whose provider package registers it
// when imported: providers/sqlite (file:, sqlite:), providers/postgres
// (postgres://) and providers/mysql (mysql://, MySQL 8.0+ and MariaDB
// 10.6+). The same code runs on all three, held to one conformance suite
// (package conformance). The relay that delivers the outbox is in
// core/relay; ports, core and core/relay never import a database library.
package wharf
