package conformance

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// hookTests cover core.Hooks on the driver and the relay: every operation
// is started and ended once, with what instrumentation needs, and the trace
// context travels from the enqueue to the handler through the headers.
func hookTests() []testCase {
	return []testCase{
		{"HooksSeeEveryOperationAndCarryTheTraceToTheHandler", testHooks},
	}
}

// traceKey is the context key under which the recording hooks keep the
// current "span".
type traceKey struct{}

// hookRecorder is a core.Hooks that records every operation, passes a
// "span" name down the context, and injects it into message headers.
type hookRecorder struct {
	mu    sync.Mutex
	ops   []core.Operation
	ends  []core.End
	spans []string // the parent "span" each operation started under
}

func (r *hookRecorder) hooks() core.Hooks {
	return core.Hooks{
		Start: func(ctx context.Context, op core.Operation) (context.Context, func(core.End)) {
			parent, _ := ctx.Value(traceKey{}).(string)
			r.mu.Lock()
			i := len(r.ops)
			r.ops = append(r.ops, op)
			r.ends = append(r.ends, core.End{Outcome: "<not ended>"})
			r.spans = append(r.spans, parent)
			r.mu.Unlock()
			ended := false
			return context.WithValue(ctx, traceKey{}, string(op.Kind)), func(e core.End) {
				r.mu.Lock()
				defer r.mu.Unlock()
				if ended {
					panic("conformance: an operation ended twice")
				}
				ended = true
				r.ends[i] = e
			}
		},
		Inject: func(ctx context.Context, h map[string]string) {
			if s, ok := ctx.Value(traceKey{}).(string); ok {
				h["conf-trace"] = s
			}
		},
		Extract: func(ctx context.Context, h map[string]string) context.Context {
			return context.WithValue(ctx, traceKey{}, "extracted:"+h["conf-trace"])
		},
	}
}

// find returns the operations of kind, their ends and parent spans.
func (r *hookRecorder) find(kind core.OpKind) (ops []core.Operation, ends []core.End, parents []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, op := range r.ops {
		if op.Kind == kind {
			ops, ends, parents = append(ops, op), append(ends, r.ends[i]), append(parents, r.spans[i])
		}
	}
	return ops, ends, parents
}

func testHooks(t *testing.T, h Harness) {
	f := setup(t, h)
	rec := &hookRecorder{}
	opts := f.options(config{now: time.Now})
	opts.Hooks = rec.hooks()
	drv, err := h.NewDriver(f.db, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	uow := f.txUnitOfWork(drv, wharf.UnitOfWorkOptions{})

	// A transaction that reserves a key and enqueues two messages.
	require.NoError(t, uow.Transaction(f.ctx, func(ctx context.Context, tx wharf.Tx) error {
		if _, err := tx.Idempotency.Reserve(ctx, reserveReq("conf.hooks", "k", "fp")); err != nil {
			return err
		}
		own := job("conf.hooks.b")
		own.Headers = map[string]string{"conf-trace": "the message's own"}
		_, err := tx.Outbox.Enqueue(ctx, job("conf.hooks.a"), own)
		return err
	}))
	txs, txEnds, _ := rec.find(core.OpTransaction)
	require.Len(t, txs, 1)
	require.Equal(t, drv.Dialect(), txs[0].Dialect)
	require.Equal(t, "committed", txEnds[0].Outcome)
	require.Equal(t, 1, txEnds[0].Attempts)
	require.NoError(t, txEnds[0].Err)
	enq, enqEnds, enqParents := rec.find(core.OpEnqueue)
	require.Len(t, enq, 1)
	require.Equal(t, []string{"conf.hooks.a", "conf.hooks.b"}, enq[0].Topics)
	require.Equal(t, 2, enq[0].Count)
	require.Equal(t, "attempt", enqParents[0], "the enqueue runs in the context of the transaction's attempt")
	atts, attEnds, attParents := rec.find(core.OpAttempt)
	require.Len(t, atts, 1)
	require.Equal(t, 1, atts[0].Attempt)
	require.Equal(t, drv.Dialect(), atts[0].Dialect)
	require.Equal(t, "committed", attEnds[0].Outcome)
	require.Equal(t, "transaction", attParents[0], "the attempt runs in the transaction's context")
	require.NoError(t, enqEnds[0].Err)
	res, resEnds, _ := rec.find(core.OpReserve)
	require.Len(t, res, 1)
	require.Equal(t, "conf.hooks", res[0].Namespace)
	require.Equal(t, ports.Reserved.String(), resEnds[0].Outcome)

	// A failing transaction ends rolled back with its error.
	failure := errors.New("conformance: the use case failed")
	require.ErrorIs(t, uow.Transaction(f.ctx, func(context.Context, wharf.Tx) error { return failure }), failure)
	_, txEnds, _ = rec.find(core.OpTransaction)
	require.Len(t, txEnds, 2)
	require.Equal(t, "rolled_back", txEnds[1].Outcome)
	require.ErrorIs(t, txEnds[1].Err, failure)
	_, attEnds, _ = rec.find(core.OpAttempt)
	require.Len(t, attEnds, 2)
	require.Equal(t, "rolled_back", attEnds[1].Outcome)
	require.ErrorIs(t, attEnds[1].Err, failure)

	// A relay delivers them: the handler runs in the delivery's context,
	// which continues the trace injected at the enqueue.
	got := make(chan string, 2)
	hs := relay.NewHandlers()
	for _, topic := range []string{"conf.hooks.a", "conf.hooks.b"} {
		require.NoError(t, hs.Handle(topic, func(ctx context.Context, m ports.ClaimedMessage) error {
			span, _ := ctx.Value(traceKey{}).(string)
			got <- m.Topic + " " + span + " " + m.Headers["conf-trace"]
			return nil
		}, relay.TopicOptions{}))
	}
	r, err := relay.New(drv.Outbox(), hs, relay.Options{Hooks: rec.hooks()})
	require.NoError(t, err)
	dr, err := r.Drain(f.ctx)
	require.NoError(t, err)
	require.Equal(t, 2, dr.Delivered)
	require.ElementsMatch(t, []string{
		"conf.hooks.a deliver enqueue",
		"conf.hooks.b deliver the message's own",
	}, []string{<-got, <-got}, "the handler's context is the delivery's; the enqueue's trace is in the headers, the message's own header wins")

	claims, claimEnds, _ := rec.find(core.OpClaim)
	require.NotEmpty(t, claims)
	require.Equal(t, 2, claimEnds[0].Count, "the first claim handed out both")
	dels, delEnds, delParents := rec.find(core.OpDeliver)
	require.Len(t, dels, 2)
	for i, d := range dels {
		require.Equal(t, 1, d.Attempt)
		require.NotEmpty(t, d.MessageID)
		require.False(t, d.CreatedAt.IsZero())
		require.Equal(t, string(relay.OutcomeDelivered), delEnds[i].Outcome, "a delivery ends when its outcome is recorded")
		require.Contains(t, delParents[i], "extracted:", "the delivery starts in the extracted context")
	}
}
