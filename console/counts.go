package console

import (
	"context"
	"sync"
	"time"

	"github.com/wharf-go/wharf/ports"
)

// costFactor keeps counting cheap: after a count that took d, the next
// waits at least costFactor × d, so that counting takes at most a tenth
// of one connection's time however many pages refresh.
const costFactor = 10

// counts caches the result of a counting query (a whole-table scan) for
// every viewer of the console: it runs at most once per interval, one at
// a time; a request meanwhile gets the last result and its age.
type counts[T any] struct {
	fetch func(context.Context) (T, error)
	every time.Duration
	now   func() time.Time
	// sampled, when set, is told every successful count.
	sampled func(T, time.Time)

	mu      sync.Mutex
	last    snapshot[T]
	running chan struct{} // closed when the count under way ends
}

// snapshot is one count: its value, when it was taken and how long it took.
type snapshot[T any] struct {
	Value T
	At    time.Time
	Took  time.Duration
	Err   error
	ok    bool // a count has completed
}

// interval is the least age at which a count is taken again.
func (c *counts[T]) interval() time.Duration {
	return max(c.every, costFactor*c.last.Took)
}

// get returns the cached count, counting again when it is older than the
// interval. Only the first request ever waits for a count under way.
func (c *counts[T]) get(ctx context.Context) snapshot[T] {
	c.mu.Lock()
	for {
		if c.last.ok && (c.now().Sub(c.last.At) < c.interval() || c.running != nil) {
			s := c.last
			c.mu.Unlock()
			return s
		}
		if c.running == nil {
			break
		}
		wait := c.running
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return snapshot[T]{Err: ctx.Err()}
		}
		c.mu.Lock()
	}
	done := make(chan struct{})
	c.running = done
	c.mu.Unlock()

	began := time.Now() // the duration is real time, whatever the clock of the pages
	v, err := c.fetch(ctx)
	s := snapshot[T]{Value: v, At: c.now(), Took: time.Since(began), Err: err, ok: true}
	c.mu.Lock()
	if err != nil {
		// Keep the last good value; a failed count is retried by the next
		// request.
		s = snapshot[T]{Err: err}
		if c.last.ok {
			s = c.last
			s.Err = err
		}
	} else {
		c.last = s
		if c.sampled != nil {
			c.sampled(v, s.At)
		}
	}
	c.running = nil
	close(done)
	c.mu.Unlock()
	return s
}

// invalidate makes the next get count again (after an action changed the
// table).
func (c *counts[T]) invalidate() {
	c.mu.Lock()
	c.last.At = time.Time{}
	c.mu.Unlock()
}

// samples charts what counting shows when no Meter counts the relays: the
// dead letters added per minute (the increase of the dead count between two
// counts, plus the dead letters this console removed meanwhile) and the
// pending backlog at the last count of each minute. Minutes without a
// count (nobody had the console open) are unknown.
type samples struct {
	mu      sync.Mutex
	minutes [chartMinutes]sampleMinute
	// lastDead is the dead count of the previous sample; removed counts the
	// dead letters requeued or purged through the console since.
	lastDead int64
	haveLast bool
	removed  int64
}

type sampleMinute struct {
	minute  int64
	dead    int64 // dead letters added
	pending int64 // backlog at the minute's last count
}

func (s *samples) add(st ports.OutboxStats, at time.Time) {
	minute := at.Unix() / 60
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &s.minutes[minute%chartMinutes]
	if m.minute != minute {
		*m = sampleMinute{minute: minute}
	}
	m.pending = st.Pending()
	if s.haveLast {
		m.dead += max(0, st.Dead-s.lastDead+s.removed)
	}
	s.lastDead, s.haveLast, s.removed = st.Dead, true, 0
}

// removedDead records dead letters that the console requeued or purged, so
// that the next sample does not read their absence as fewer failures.
func (s *samples) removedDead(n int64) {
	s.mu.Lock()
	s.removed += n
	s.mu.Unlock()
}

// sampledMinute is one minute of samples.
type sampledMinute struct {
	Start   time.Time
	Known   bool
	Dead    int64
	Pending int64
}

func (s *samples) lastHour(now time.Time) []sampledMinute {
	cur := now.Unix() / 60
	out := make([]sampledMinute, chartMinutes)
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range out {
		minute := cur - chartMinutes + 1 + int64(i)
		out[i].Start = time.Unix(minute*60, 0).UTC()
		if m := s.minutes[minute%chartMinutes]; m.minute == minute {
			out[i].Known, out[i].Dead, out[i].Pending = true, m.dead, m.pending
		}
	}
	return out
}
