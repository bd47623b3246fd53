package outboxsql

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
)

// The claim cursor keeps claims from walking the outbox's history.
//
// Delivered messages are deleted, but a database keeps their index entries
// until no open transaction can still see the rows (PostgreSQL's MVCC
// horizon; a long transaction anywhere in the database holds it back).
// A claim that scans the claim index from its start walks every such entry
// on every claim, so its cost grows with the messages delivered since the
// oldest open transaction began. The cursor lets most claims start where
// the claimable messages are instead:
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
//     in the past, a Release, and the completion, dead-lettering or final
//     retry of a message with an ordering key (its successor becomes
//     claimable, at a position no later than the message's creation).
//   - Everything else that can appear behind the cursor (a lease that
//     expired, a release or an enqueue by another process, a producer that
//     commits more than CursorWindow late) is found by a claim that scans
//     from the start, made at most every FullScanInterval by the outbox's
//     clock: FullScanInterval is such a message's extra latency at most
//     (beyond the relay's poll interval).
const (
	CursorWindow     = time.Second
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
}

type cursor struct {
	from     time.Time // the next claim scans from here, less CursorWindow
	lastFull time.Time // when a claim last scanned from the start (outbox clock)
}

// heldMessage is what the cursor remembers of a claimed message.
type heldMessage struct {
	pos         time.Time // min(AvailableAt, CreatedAt): no later than its key successors
	keyed       bool
	final       bool // claimed on its last attempt: a retry dead-letters it
	lockedUntil time.Time
}

func newCursors() *cursors {
	return &cursors{topics: map[string]*cursor{}, held: map[string]heldMessage{}}
}

func topicsKey(topics []string) string {
	if len(topics) == 0 {
		return ""
	}
	t := slices.Clone(topics)
	slices.Sort(t)
	return strings.Join(t, "\x00")
}

// from returns the lower bound of the next claim of topics at now: "" for
// a scan from the start (due every FullScanInterval, and the first time).
func (c *cursors) from(topics string, now time.Time) (from string, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.topics[topics]
	if cur == nil || now.Sub(cur.lastFull) >= FullScanInterval || now.Before(cur.lastFull) {
		return "", true
	}
	return core.FormatTime(cur.from.Add(-CursorWindow)), false
}

// claimed moves the cursor of topics after a claim at now that asked for
// limit messages and got msgs (in claim order), and remembers the claimed
// messages.
func (c *cursors) claimed(topics string, now time.Time, full bool, limit int, msgs []ports.ClaimedMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.topics[topics]
	if cur == nil {
		cur = &cursor{}
		c.topics[topics] = cur
	}
	if full {
		cur.lastFull = now
	}
	if len(msgs) >= limit {
		cur.from = msgs[len(msgs)-1].AvailableAt
	} else {
		cur.from = now
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
		}
	}
}

// What settling a held message frees, by operation.
var (
	freesKey   = func(h heldMessage) bool { return h.keyed }           // complete, dead-letter
	freesRetry = func(h heldMessage) bool { return h.keyed && h.final } // a final retry dead-letters
	freesAll   = func(heldMessage) bool { return true }                 // release: the message itself
)

// CursorFrom returns the bound a claim of topics scans from when no scan
// from the start is due ("" before the first claim), for tests and EXPLAIN.
func (o *Outbox) CursorFrom(topics []string) string {
	o.cur.mu.Lock()
	defer o.cur.mu.Unlock()
	cur := o.cur.topics[topicsKey(topics)]
	if cur == nil {
		return ""
	}
	return core.FormatTime(cur.from.Add(-CursorWindow))
}
