package main

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

// The idempotency workload: producers make requests as an HTTP handler
// would, each in one unit-of-work transaction. "wharf": core.RunIdempotently
// with the transaction's idempotency store (reserve the request's key,
// insert the order, store the result as the key's completion); "bare": the
// order insert alone. Then (wharf) replayRequests requests are repeated one
// at a time: each finds its key completed and returns the stored result
// without running the insert; their latency is the replay latency.

func init() {
	cases["idem/wharf"] = idemCase
	cases["idem/bare"] = idemCase
}

const replayRequests = 500

type orderResult struct {
	OrderID string `json:"order_id"`
}

func orderBody(customer string, seq int) string {
	return fmt.Sprintf(`{"customer":%q,"lines":[{"sku":"sku-%d","qty":1,"price_cents":1999}],"seq":%d}`, customer, seq%97, seq)
}

func idemCase(ctx context.Context, s Spec, r *Result) error {
	p := producersFor(s)
	e, err := openWharf(ctx, s, p+2)
	if err != nil {
		return err
	}
	defer e.Close()
	uow, err := wharf.NewUnitOfWork(e.drv, func(tx wharf.Tx) (wharf.Tx, error) { return tx, nil }, wharf.UnitOfWorkOptions{})
	if err != nil {
		return err
	}
	insert := "INSERT INTO " + quoteIdent(s.Dialect, ordersTable) + " (id, customer, body, created_at) VALUES (?, ?, ?, ?)"
	idem := s.Impl == "wharf"
	request := func(ctx context.Context, key, customer, body string) (orderResult, bool, error) {
		var res orderResult
		var replayed bool
		err := uow.Transaction(ctx, func(ctx context.Context, tx wharf.Tx) error {
			run := func(ctx context.Context) (orderResult, error) {
				id := core.NewID()
				_, err := tx.DB.ExecContext(ctx, insert, id, customer, body, core.FormatTime(time.Now()))
				return orderResult{OrderID: id}, err
			}
			if !idem {
				var err error
				res, err = run(ctx)
				return err
			}
			req := ports.ReserveRequest{
				IdempotencyKey: ports.IdempotencyKey{Namespace: "orders.create", Key: key, Scope: map[string]string{"customer": customer}},
				Fingerprint:    core.Fingerprint([]byte("POST"), []byte("/orders"), []byte(body)),
			}
			var err error
			res, replayed, err = core.RunIdempotently(ctx, tx.Idempotency, req, run)
			return err
		})
		return res, replayed, err
	}
	if idem {
		r.Notes = append(r.Notes, "UnitOfWork.Transaction: core.RunIdempotently(Tx.Idempotency) around the order INSERT")
	} else {
		r.Notes = append(r.Notes, "UnitOfWork.Transaction: the order INSERT alone")
	}
	r.Producers = p
	var total atomic.Int64
	deadline := time.Now().Add(s.Cfg.IdemDuration)
	cpu0 := cpuStart()
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	counts := make([]int, p)
	for i := 0; i < p; i++ {
		g.Go(func() error {
			customer := fmt.Sprintf("customer-%d", i)
			for n := 0; time.Now().Before(deadline); n++ {
				key := fmt.Sprintf("req-%d-%d", i, n)
				if _, replayed, err := request(gctx, key, customer, orderBody(customer, n)); err != nil {
					return err
				} else if replayed {
					return fmt.Errorf("request %s replayed on its first run", key)
				}
				counts[i] = n + 1
				total.Add(1)
			}
			return nil
		})
	}
	err = g.Wait()
	el := time.Since(start)
	r.Messages, r.Seconds = total.Load(), el.Seconds()
	r.MsgsPerSec = float64(r.Messages) / el.Seconds()
	r.setCPU(cpu0, r.Messages)
	if err != nil {
		return err
	}
	orders, err := countRows(ctx, e.drv.DB().DB, s.Dialect, ordersTable)
	if err != nil {
		return err
	}
	if orders != r.Messages {
		return fmt.Errorf("%d orders stored for %d requests", orders, r.Messages)
	}
	if !idem {
		return nil
	}
	// Replays, one at a time, spread over the producers' keys.
	var lat []time.Duration
	for k := 0; k < replayRequests; k++ {
		i := k % p
		if counts[i] == 0 {
			continue
		}
		n := (k / p * 7919) % counts[i]
		customer := fmt.Sprintf("customer-%d", i)
		t0 := time.Now()
		res, replayed, err := request(ctx, fmt.Sprintf("req-%d-%d", i, n), customer, orderBody(customer, n))
		lat = append(lat, time.Since(t0))
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		if !replayed || res.OrderID == "" {
			return fmt.Errorf("replay of req-%d-%d ran the request again (replayed %v, result %+v)", i, n, replayed, res)
		}
	}
	if after, err := countRows(ctx, e.drv.DB().DB, s.Dialect, ordersTable); err != nil {
		return err
	} else if after != orders {
		return fmt.Errorf("replays stored %d more orders", after-orders)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		r.ReplayP50ms = float64(lat[len(lat)/2]) / 1e6
		r.ReplayP99ms = float64(lat[len(lat)*99/100]) / 1e6
	}
	return nil
}
