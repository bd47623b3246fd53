package otelwharf_test

import (
	"context"
	"testing"
	"time"

	"github.com/wharf-go/wharf/core"
)

// BenchmarkDeliveryHooks measures the hooks alone, without a database: one
// delivery's Extract, Start and end, per operation.
func BenchmarkDeliveryHooks(b *testing.B) {
	for _, v := range benchVariants()[1:] {
		b.Run(v.name, func(b *testing.B) {
			hooks := v.hooks(b)
			// Headers as an enqueue under this provider writes them.
			headers := map[string]string{}
			ctx, end := hooks.Start(context.Background(), core.Operation{Kind: core.OpEnqueue, Dialect: "sqlite", Table: "outbox_messages", Topics: []string{"bench"}, Count: 1})
			hooks.Inject(ctx, headers)
			end(core.End{})
			op := core.Operation{Kind: core.OpDeliver, Topics: []string{"bench"}, MessageID: "0192f3c4-0000-7000-8000-000000000000", Attempt: 1, CreatedAt: time.Now()}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				ctx := hooks.Extract(context.Background(), headers)
				_, end := hooks.Start(ctx, op)
				end(core.End{Outcome: "delivered", Duration: time.Millisecond})
			}
		})
	}
}
