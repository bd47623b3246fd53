package outboxsql

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/wharf-go/wharf/internal/check"
)

// DeleteDeadLetters implements ports.DeadLetterDeleter: one DELETE by
// primary key per DefaultPurgeBatch IDs, each checking the status again.
func (o *Outbox) DeleteDeadLetters(ctx context.Context, ids ...string) (int64, error) {
	if len(ids) == 0 {
		return 0, check.Invalidf("outbox delete dead letters: no IDs; name the dead letters to delete (Purge deletes them by age)")
	}
	for i, id := range ids {
		if id == "" {
			return 0, check.Invalidf("outbox delete dead letters: ID %d of %d is empty", i+1, len(ids))
		}
	}
	var total int64
	for start := 0; start < len(ids); start += DefaultPurgeBatch {
		if start > 0 {
			if err := ctx.Err(); err != nil {
				return total, fmt.Errorf("outbox delete dead letters: stopped after %d: %w", total, err)
			}
		}
		batch := ids[start:min(start+DefaultPurgeBatch, len(ids))]
		n, err := o.exec(ctx, "delete_dead", "DELETE FROM "+o.q.n.Table+" WHERE id IN (?) AND status = 'dead'", bun.In(batch))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}
