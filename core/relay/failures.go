package relay

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// FailureLogInterval is how often a relay logs failures of one kind (a
// claim, a completion, a lease extension, a release, a message retried or
// abandoned) while they repeat, as during a database outage: the first is
// logged at once, the rest are counted and reported with the next one
// logged after the interval, and the end of a run of failures is logged
// with their total.
const FailureLogInterval = 5 * time.Second

// Failure is a failed outbox operation of a relay, as reported to
// Options.OnFailure. The relay retries every one of them itself.
type Failure struct {
	// Op is the operation: "claim", "complete", "extend", "release", or
	// "notify" when the outbox's notifications are unavailable (Err then
	// matches ports.ErrNotificationsUnavailable when this process's commits
	// still wake the relay).
	Op string
	// Messages is how many messages the operation was for (the claim's
	// limit for a claim).
	Messages int
	// Err is the operation's error.
	Err error
}

// failureLog rate-limits the relay's logs of repeated failures, per kind.
type failureLog struct {
	log   *slog.Logger
	every time.Duration

	mu    sync.Mutex
	kinds map[string]*failureRun
}

// failureRun is a run of failures of one kind.
type failureRun struct {
	total      int       // failures in the run
	suppressed int       // failures not logged since the last one logged
	next       time.Time // when the next failure may be logged
}

func newFailureLog(log *slog.Logger, every time.Duration) *failureLog {
	return &failureLog{log: log, every: every, kinds: map[string]*failureRun{}}
}

// failed logs a failure of kind at level with msg and attrs, unless one of
// that kind was logged less than an interval ago; then it is counted, and
// the count is added to the next record logged.
func (l *failureLog) failed(ctx context.Context, kind string, level slog.Level, msg string, attrs ...slog.Attr) {
	if !l.log.Enabled(ctx, level) {
		return
	}
	now := time.Now()
	l.mu.Lock()
	run := l.kinds[kind]
	if run == nil {
		run = &failureRun{}
		l.kinds[kind] = run
	}
	run.total++
	if now.Before(run.next) {
		run.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed := run.suppressed
	run.suppressed, run.next = 0, now.Add(l.every)
	l.mu.Unlock()
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed", suppressed), slog.Duration("suppressed_within", l.every))
	}
	l.log.LogAttrs(ctx, level, msg, attrs...)
}

// recovered ends a run of failures of kind, logging how many there were
// when more than one (a single failure's record said everything).
func (l *failureLog) recovered(ctx context.Context, kind, msg string) {
	l.mu.Lock()
	run := l.kinds[kind]
	delete(l.kinds, kind)
	l.mu.Unlock()
	if run != nil && run.total > 1 {
		l.log.LogAttrs(ctx, slog.LevelInfo, msg, slog.Int("failures", run.total))
	}
}

// failure reports a failed operation to Options.OnFailure.
func (p *pass) failure(op string, messages int, err error) {
	if f := p.r.opts.OnFailure; f != nil {
		f(p.bg, Failure{Op: op, Messages: messages, Err: err})
	}
}
