package outboxsql

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/internal/querylog"
	"github.com/wharf-go/wharf/ports"
)

// The claim cursor keeps claims from walking the outbox's history.
//
// Delivered messages are deleted, but a database keeps their index entries
// until no open transaction can still see the rows (PostgreSQL's MVCC
// horizon; a long transaction anywhere in the database holds it back).
// A claim that scans the claim index from its start walks every such entry
// on every claim, so its cost grows with the messages delivered since the
// oldest open transaction began. The cursor lets claims start where the
// claimable messages are instead:
//
//   - After a claim that came back full, the next one scans from the
//     position (available_at) of the last message it claimed; after a short
//     one, from the claim's own "now": everything claimable before it was
//     examined.
//   - Every scan starts CursorWindow before that position, for producers
//     whose transactions commit a little after they stamped their messages,
//     and for clocks that differ a little between processes.
//   - What this process does that makes a message claimable behind the
//     position moves the cursor back to it: an Enqueue with an AvailableAt
//     in the past, a Release, the completion, dead-lettering or final retry
//     of a message with an ordering key (its successor becomes claimable,
//     at a position no later than the message's creation), a lease of its
//     own that expired unsettled, and a unit of work of its own that
//     commits more than CursorWindow after its first enqueue.
//   - Everything else that can appear behind the cursor (a lease that
//     expired, a release or an enqueue by another process, another
//     process's producer that commits more than CursorWindow late) is
//     found by a sweep: a read-only
//     query, in its own goroutine so that no claim waits for it, for the
//     first claimable message behind the cursor, started at most every
//     FullScanInterval of the outbox's clock by a claim; when it finds one
//     it moves the cursor back to it. The sweep walks what the claims do
//     not, but off their path. FullScanInterval, plus the sweep's own time,
//     is such a message's extra latency at most.
//   - The first claim of a topic set has no cursor yet: it scans from the
//     start.
const (
	CursorWindow     = 250 * time.Millisecond
	FullScanInterval = time.Second
	// maxHeld bounds the claimed messages whose positions the cursor
	// remembers; past it, those whose leases ended are forgotten.
	maxHeld = 4096
)

// cursors are an outbox's claim cursors, one per set of claimed topics
// (relays with other topics must not move each other's), and the positions
// of the messages it holds claims on. Shared by every WithDB copy.
type cursors struct {
	mu     sync.Mutex
	topics map[string]*cursor
	held   map[string]heldMessage // claimed message ID → what settling it may free
	// expiry is no later than the earliest lease of held (zero when none):
	// before it, no held lease has expired.
	expiry time.Time
	// life ends when the outbox is closed; sweeps run in it.
	life context.Context
	stop context.CancelFunc
}

type cursor struct {
	from      time.Time // the next claim scans from here, less CursorWindow
	lastSweep time.Time // when a sweep last started (outbox clock)
	sweeping  bool      // a sweep runs
	// rewinds counts the moves back, so that a claim that ran meanwhile
	// does not move the cursor past them.
	rewinds uint64
}

// heldMessage is what the cursor remembers of a claimed message.
type heldMessage struct {
	pos         time.Time // min(AvailableAt, CreatedAt): no later than its key successors
	keyed       bool
	final       bool // claimed on its last attempt: a retry dead-letters it
	lockedUntil time.Time
}

func newCursors() *cursors {
	life, stop := context.WithCancel(context.Background())
	return &cursors{topics: map[string]*cursor{}, held: map[string]heldMessage{}, life: life, stop: stop}
}

// Close stops the outbox's sweeps (its driver is closing).
func (o *Outbox) Close() { o.cur.stop() }

func topicsKey(topics []string) string {
	if len(topics) == 0 {
		return ""
	}
	t := slices.Clone(topics)
	slices.Sort(t)
	return strings.Join(t, "\x00")
}

// from returns the lower bound of the next claim of topics at now (""
// scans from the start: the first claim), whether a sweep behind it is due
// (then the caller starts one, and calls swept when it ends), and the
// cursor's count of rewinds, which the caller hands back to claimed.
func (c *cursors) from(topics string, now time.Time) (from string, sweep bool, rewinds uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.topics[topics]
	if cur == nil {
		return "", false, 0
	}
	c.expiredLocked(now)
	if !cur.sweeping && (now.Sub(cur.lastSweep) >= FullScanInterval || now.Before(cur.lastSweep)) {
		cur.sweeping, cur.lastSweep, sweep = true, now, true
	}
	return core.FormatTime(cur.from.Add(-CursorWindow)), sweep, cur.rewinds
}

// expiredLocked moves the cursors back to the held messages whose leases
// ended unsettled (claimable again), and forgets them.
func (c *cursors) expiredLocked(now time.Time) {
	if c.expiry.IsZero() || now.Before(c.expiry) {
		return
	}
	c.expiry = time.Time{}
	for id, h := range c.held {
		if now.Before(h.lockedUntil) {
			c.noteExpiryLocked(h.lockedUntil)
			continue
		}
		delete(c.held, id)
		c.rewindLocked(h.pos)
	}
}

func (c *cursors) noteExpiryLocked(at time.Time) {
	if c.expiry.IsZero() || at.Before(c.expiry) {
		c.expiry = at
	}
}

// extended records the new lease of a held message.
func (c *cursors) extended(id string, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h, ok := c.held[id]; ok {
		h.lockedUntil = until
		c.held[id] = h
	}
}

// swept ends a sweep of topics.
func (c *cursors) swept(topics string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.topics[topics]; cur != nil {
		cur.sweeping = false
	}
}

// claimed moves the cursor of topics after a claim at now that asked for
// limit messages and got msgs (in claim order), and remembers the claimed
// messages. rewinds is what from returned for the claim: when the cursor
// was moved back meanwhile, it stays back.
func (c *cursors) claimed(topics string, now time.Time, rewinds uint64, limit int, msgs []ports.ClaimedMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.topics[topics]
	if cur == nil {
		cur = &cursor{lastSweep: now, from: now} // the first claim scanned from the start
		c.topics[topics] = cur
	}
	next := now
	if len(msgs) >= limit {
		next = msgs[len(msgs)-1].AvailableAt
	}
	if cur.rewinds == rewinds || next.Before(cur.from) {
		cur.from = next
	}
	if len(c.held)+len(msgs) > maxHeld {
		for id, h := range c.held {
			if !h.lockedUntil.After(now) {
				delete(c.held, id)
			}
		}
	}
	for _, m := range msgs {
		pos := m.AvailableAt
		if m.CreatedAt.Before(pos) {
			pos = m.CreatedAt
		}
		c.held[m.ID] = heldMessage{pos: pos, keyed: m.Key != "", final: m.MaxAttempts > 0 && m.Attempts >= m.MaxAttempts,
			lockedUntil: m.LockedUntil}
		c.noteExpiryLocked(m.LockedUntil)
	}
}

// settled forgets the claimed messages ids, moving the cursors back to the
// ones whose settling may have made a message claimable behind them:
// frees reports that for a held message.
func (c *cursors) settled(ids []string, frees func(heldMessage) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		h, ok := c.held[id]
		if !ok {
			continue
		}
		delete(c.held, id)
		if frees(h) {
			c.rewindLocked(h.pos)
		}
	}
}

// rewind moves every cursor back to pos, if it is ahead of it.
func (c *cursors) rewind(pos time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rewindLocked(pos)
}

func (c *cursors) rewindLocked(pos time.Time) {
	for _, cur := range c.topics {
		if pos.Before(cur.from) {
			cur.from = pos
			cur.rewinds++
		}
	}
}

// What settling a held message frees, by operation.
var (
	freesKey   = func(h heldMessage) bool { return h.keyed }            // complete, dead-letter
	freesRetry = func(h heldMessage) bool { return h.keyed && h.final } // a final retry dead-letters
	freesAll   = func(heldMessage) bool { return true }                 // release: the message itself
)

// sweep looks for the first claimable message of topics before the claim
// bound before, at now, and moves the cursor back to it. It runs in its
// own goroutine, bounded by sweepTimeout; a failure is logged and the next
// sweep tries again.
func (o *Outbox) sweep(key string, topics []string, now time.Time, before string) {
	defer o.cur.swept(key)
	ctx, cancel := context.WithTimeout(querylog.WithPort(o.cur.life, "outbox.sweep"), sweepTimeout)
	defer cancel()
	p := ClaimParams{Now: core.FormatTime(now), Topics: topics}
	pos, err := o.dialect.Behind(ctx, o.db, o.q, p, before)
	if err != nil && o.cur.life.Err() != nil {
		return // the driver was closed
	}
	if err != nil {
		o.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "outbox: sweep behind the claim cursor failed; the next one retries",
			slog.String("table", o.q.n.Raw), slog.String("error", o.dialect.Translate(err).Error()))
		return
	}
	if pos == "" {
		return
	}
	at, err := core.ParseTime(pos)
	if err != nil {
		return
	}
	o.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "outbox: sweep found a message behind the claim cursor",
		slog.String("table", o.q.n.Raw), slog.Time("available_at", at))
	o.cur.rewind(at)
	o.Committed() // a relay waiting for work claims it at once
}

// sweepTimeout bounds one sweep.
const sweepTimeout = 30 * time.Second

// CursorFrom returns the bound a claim of topics scans from ("" before the
// first claim), for tests and EXPLAIN.
func (o *Outbox) CursorFrom(topics []string) string {
	o.cur.mu.Lock()
	defer o.cur.mu.Unlock()
	cur := o.cur.topics[topicsKey(topics)]
	if cur == nil {
		return ""
	}
	return core.FormatTime(cur.from.Add(-CursorWindow))
}
