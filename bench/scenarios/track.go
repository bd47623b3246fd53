package main

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-go/wharf/bench/latency"
)

// tracker follows one system's messages by sequence number: which ones the
// producer saw commit, how often each was delivered, and the pickup
// latencies (enqueue → handler start) of first deliveries, per second and
// per phase, in bounded-memory histograms.
type tracker struct {
	next atomic.Int64 // next sequence number

	mu        sync.Mutex
	counts    []uint8 // deliveries per sequence number (saturating)
	committed []bool  // the producer saw the insert commit
	enq       int64   // committed inserts
	first     int64   // first deliveries
	dups      int64   // deliveries after the first
	unknown   int64   // deliveries without a sequence number
	sec       latency.Histogram
	phase     latency.Histogram
	// last tick's cumulative counts
	lastEnq, lastFirst, lastDups int64
}

// allocate returns a new sequence number.
func (t *tracker) allocate() int64 { return t.next.Add(1) - 1 }

func (t *tracker) grow(seq int64) {
	if seq < int64(len(t.counts)) {
		return
	}
	n := max(int64(2*len(t.counts)), seq+1, 1024)
	c := make([]uint8, n)
	copy(c, t.counts)
	t.counts = c
	b := make([]bool, n)
	copy(b, t.committed)
	t.committed = b
}

// commit records that the insert of seq committed.
func (t *tracker) commit(seq int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.grow(seq)
	if !t.committed[seq] {
		t.committed[seq] = true
		t.enq++
	}
}

// deliver records a handler start of seq with its pickup latency.
func (t *tracker) deliver(seq int64, lat time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq < 0 {
		t.unknown++
		return
	}
	t.grow(seq)
	c := t.counts[seq]
	if c < 255 {
		t.counts[seq] = c + 1
	}
	if c > 0 {
		t.dups++
		return
	}
	t.first++
	t.sec.Record(lat)
	t.phase.Record(lat)
}

// tickStats are one second's figures.
type tickStats struct {
	enq, first, dups int64
	backlog          int64
	p50, p95, p99    float64 // ms; 0 when nothing was delivered
	n                uint64
}

// tick closes the current second.
func (t *tracker) tick() tickStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := tickStats{
		enq: t.enq - t.lastEnq, first: t.first - t.lastFirst, dups: t.dups - t.lastDups,
		backlog: t.enq - t.first, n: t.sec.Count(),
		p50: t.sec.Millis(0.50), p95: t.sec.Millis(0.95), p99: t.sec.Millis(0.99),
	}
	t.lastEnq, t.lastFirst, t.lastDups = t.enq, t.first, t.dups
	t.sec.Reset()
	return s
}

// endPhase returns the phase's latency histogram and starts a new one.
func (t *tracker) endPhase() *latency.Histogram {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := &latency.Histogram{}
	h.Merge(&t.phase)
	t.phase.Reset()
	return h
}

// outstanding is the number of committed messages not yet delivered.
func (t *tracker) outstanding() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.enq - t.first
}

// accounting is the final reckoning of a run.
type accounting struct {
	Produced    int64 `json:"produced"`
	Delivered   int64 `json:"delivered"`
	Undelivered int64 `json:"undelivered"`
	Duplicates  int64 `json:"duplicates"`
	// Uncommitted counts messages delivered whose insert the producer saw
	// fail (an ambiguous commit); Unknown, deliveries without a sequence.
	Uncommitted int64 `json:"uncommitted_delivered"`
	Unknown     int64 `json:"unknown_deliveries"`
}

func (t *tracker) account() accounting {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := accounting{Produced: t.enq, Delivered: t.first, Duplicates: t.dups, Unknown: t.unknown}
	for i, c := range t.counts {
		switch {
		case t.committed[i] && c == 0:
			a.Undelivered++
		case !t.committed[i] && c > 0:
			a.Uncommitted++
		}
	}
	return a
}
