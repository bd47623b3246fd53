package ports

import "context"

// DeadLetterDeleter is the optional interface of an outbox that deletes
// named dead letters (wharf's drivers implement it), found by type
// assertion on an OutboxAdmin. The web console uses it to purge one or a
// selection of dead letters; OutboxAdmin.Purge removes them by age.
type DeadLetterDeleter interface {
	// DeleteDeadLetters deletes the messages of ids that are dead letters
	// and returns how many it deleted: an ID that is pending (requeued
	// meanwhile) or not in the outbox is skipped. It deletes in bounded
	// batches of one short statement each; a cancelled ctx stops it
	// between batches with the count so far. Empty ids, or an empty ID,
	// is an error matching ErrInvalidArgument (use Purge to delete all).
	DeleteDeadLetters(ctx context.Context, ids ...string) (int64, error)
}
