package ports

import "context"

// OutboxNotifier is an optional ability of an outbox, found by type
// assertion, that tells a waiting relay when messages were committed so it
// can claim at once instead of polling (PostgreSQL LISTEN/NOTIFY).
type OutboxNotifier interface {
	// Notifications starts listening and returns a channel that receives a
	// value after messages are committed to the outbox. Values are coalesced
	// (the channel has a buffer of one) and may be spurious: after each one,
	// claim to see what is there. After a lost connection is re-established a
	// value is sent, since notifications may have been missed meanwhile. The
	// channel is closed when ctx is done.
	//
	// An error means notifications are unavailable, wholly or in part;
	// callers poll for what they miss. When it matches
	// ErrNotificationsUnavailable and the channel is not nil, the channel
	// still carries what the outbox can tell (the commits of this process),
	// and callers keep it.
	Notifications(ctx context.Context) (<-chan struct{}, error)
}
