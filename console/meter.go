package console

import (
	"context"
	"sync"
	"time"

	"github.com/wharf-go/wharf/core/relay"
)

// chartMinutes is how far back the overview's chart goes.
const chartMinutes = 60

// Meter counts the outcomes of relays per minute over the last hour, for
// the overview's chart of delivered and failed messages. wharf deletes a
// message once it is delivered, so the database cannot say how many were:
// the relays that deliver them can. Feed a Meter from every relay of the
// process (relay.Options.Observer: meter.Observe) and give it to the
// console (Options.Meter). It counts only this process's relays. A nil
// *Meter counts nothing. It is safe for concurrent use.
type Meter struct {
	now func() time.Time

	mu      sync.Mutex
	minutes [chartMinutes]meterMinute
}

// meterMinute is one minute's counts; minute is its Unix minute, so that
// a slot left from an hour ago is recognised as stale.
type meterMinute struct {
	minute                   int64
	delivered, retried, dead int64
}

// NewMeter returns a Meter on the clock now (nil means time.Now).
func NewMeter(now func() time.Time) *Meter {
	if now == nil {
		now = time.Now
	}
	return &Meter{now: now}
}

// Observe counts o. Its signature is relay.Observer's: pass meter.Observe
// as relay.Options.Observer, or call it from an Observer of your own.
// Delivered counts as delivered; retried and dead count as failed; other
// outcomes (extended, released, abandoned) are not counted.
func (m *Meter) Observe(_ context.Context, o relay.Observation) {
	if m == nil {
		return
	}
	switch o.Outcome {
	case relay.OutcomeDelivered, relay.OutcomeRetried, relay.OutcomeDead:
	default:
		return
	}
	minute := m.now().Unix() / 60
	m.mu.Lock()
	s := &m.minutes[minute%chartMinutes]
	if s.minute != minute {
		*s = meterMinute{minute: minute}
	}
	switch o.Outcome {
	case relay.OutcomeDelivered:
		s.delivered++
	case relay.OutcomeRetried:
		s.retried++
	case relay.OutcomeDead:
		s.dead++
	}
	m.mu.Unlock()
}

// MinuteCounts are the outcomes counted in one minute.
type MinuteCounts struct {
	// Start is the minute's first instant.
	Start time.Time
	// Delivered messages left the outbox.
	Delivered int64
	// Retried and Dead are the failed deliveries: scheduled again, or
	// dead-lettered.
	Retried, Dead int64
}

// Failed counts the failed deliveries of the minute.
func (c MinuteCounts) Failed() int64 { return c.Retried + c.Dead }

// LastHour returns the counts of the last 60 minutes, oldest first, the
// current (partial) minute last.
func (m *Meter) LastHour() []MinuteCounts {
	if m == nil {
		return nil
	}
	now := m.now().Unix() / 60
	out := make([]MinuteCounts, chartMinutes)
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range out {
		minute := now - chartMinutes + 1 + int64(i)
		out[i].Start = time.Unix(minute*60, 0).UTC()
		if s := m.minutes[minute%chartMinutes]; s.minute == minute {
			out[i].Delivered, out[i].Retried, out[i].Dead = s.delivered, s.retried, s.dead
		}
	}
	return out
}
