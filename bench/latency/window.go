package latency

import (
	"errors"
	"sync"
	"time"
)

// Window is a rolling histogram over the last Span of time, kept as a ring
// of one histogram per Slot: a value recorded at time t counts until the
// slot that holds t leaves the window. Memory is bounded by the number of
// slots. It is safe for concurrent use.
type Window struct {
	mu    sync.Mutex
	slot  time.Duration
	hs    []Histogram
	index []int64 // slot number each histogram holds (-1: none)
}

// NewWindow returns a window of span split into slots of slot; span must
// be a positive multiple of slot.
func NewWindow(span, slot time.Duration) (*Window, error) {
	if slot <= 0 || span <= 0 || span%slot != 0 {
		return nil, errors.New("latency: window span must be a positive multiple of a positive slot (e.g. 30s of 1s slots)")
	}
	n := int(span / slot)
	w := &Window{slot: slot, hs: make([]Histogram, n), index: make([]int64, n)}
	for i := range w.index {
		w.index[i] = -1
	}
	return w, nil
}

func (w *Window) slotOf(t time.Time) int64 { return t.UnixNano() / int64(w.slot) }

// Record adds d, observed at now.
func (w *Window) Record(now time.Time, d time.Duration) {
	s := w.slotOf(now)
	i := int(s % int64(len(w.hs)))
	w.mu.Lock()
	if w.index[i] != s {
		w.hs[i].Reset()
		w.index[i] = s
	}
	w.hs[i].Record(d)
	w.mu.Unlock()
}

// Snapshot returns a histogram of the values recorded in the window that
// ends at now (the current slot and the ones before it, Span in all).
func (w *Window) Snapshot(now time.Time) *Histogram {
	s := w.slotOf(now)
	n := int64(len(w.hs))
	out := &Histogram{}
	w.mu.Lock()
	for i := range w.hs {
		if w.index[i] > s-n && w.index[i] <= s {
			out.Merge(&w.hs[i])
		}
	}
	w.mu.Unlock()
	return out
}
