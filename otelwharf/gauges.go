package otelwharf

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/wharf-go/wharf/ports"
)

// DefaultStatsInterval is the default OutboxGaugeOptions.Interval: how old
// a Stats sample may be before a collection takes a new one.
const DefaultStatsInterval = 15 * time.Second

// DefaultStatsTimeout is the default OutboxGaugeOptions.Timeout.
const DefaultStatsTimeout = 5 * time.Second

// OutboxGaugeOptions configure ObserveOutbox. The zero value means the
// defaults; a negative duration is an error.
type OutboxGaugeOptions struct {
	// Interval is how long a Stats sample serves collections: however many
	// readers collect, however often, the outbox's Stats runs at most once
	// per Interval. Stats counts every message of the outbox table in one
	// statement (a scan of the table, or of its index, on every dialect):
	// cheap for the short table of a healthy outbox, proportional to the
	// backlog during an incident — when the gauges matter. Default
	// DefaultStatsInterval (15s, a usual scrape interval).
	Interval time.Duration
	// Timeout bounds one Stats call. Default DefaultStatsTimeout, or
	// Interval if that is shorter.
	Timeout time.Duration
	// Attributes are added to every point, to tell several observed
	// outboxes apart (for example attribute.String("wharf.outbox", "orders")).
	Attributes []attribute.KeyValue
}

// ObserveOutbox reports the outbox's queue depth (wharf.outbox.messages by
// wharf.outbox.state) and the age of its oldest ready message
// (wharf.outbox.oldest_ready.age) as observable gauges, from
// outbox.Stats sampled at most once per opts.Interval. A collection after
// a failed sample reports no points for this outbox (never stale ones), and
// the failure is logged at warn level. Unregister the returned
// registration to stop. A nil outbox or a negative duration is an error
// matching ports.ErrInvalidArgument.
func (in *Instrumentation) ObserveOutbox(outbox ports.OutboxAdmin, opts OutboxGaugeOptions) (metric.Registration, error) {
	switch {
	case outbox == nil:
		return nil, invalidf("ObserveOutbox: nil outbox; pass drv.Outbox()")
	case opts.Interval < 0:
		return nil, invalidf("OutboxGaugeOptions.Interval %v is negative; use 0 for the default (%v)", opts.Interval, DefaultStatsInterval)
	case opts.Timeout < 0:
		return nil, invalidf("OutboxGaugeOptions.Timeout %v is negative; use 0 for the default (%v)", opts.Timeout, DefaultStatsTimeout)
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultStatsInterval
	}
	if opts.Timeout == 0 {
		opts.Timeout = min(DefaultStatsTimeout, opts.Interval)
	}
	s := &statsSampler{outbox: outbox, opts: opts, now: in.now, log: in.log}
	states := [4]struct {
		opt metric.ObserveOption
		n   func(ports.OutboxStats) int64
	}{
		{stateOpt("ready", opts.Attributes), func(st ports.OutboxStats) int64 { return st.Ready }},
		{stateOpt("scheduled", opts.Attributes), func(st ports.OutboxStats) int64 { return st.Scheduled }},
		{stateOpt("leased", opts.Attributes), func(st ports.OutboxStats) int64 { return st.Leased }},
		{stateOpt("dead", opts.Attributes), func(st ports.OutboxStats) int64 { return st.Dead }},
	}
	ageOpt := metric.WithAttributeSet(attribute.NewSet(opts.Attributes...))
	return in.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		sample, ok := s.get(ctx)
		if !ok {
			return nil
		}
		for _, st := range states {
			o.ObserveInt64(in.m.messages, st.n(sample.stats), st.opt)
		}
		o.ObserveFloat64(in.m.oldestAge, sample.age.Seconds(), ageOpt)
		return nil
	}, in.m.messages, in.m.oldestAge)
}

func stateOpt(state string, extra []attribute.KeyValue) metric.ObserveOption {
	attrs := append([]attribute.KeyValue{AttrOutboxState.String(state)}, extra...)
	return metric.WithAttributeSet(attribute.NewSet(attrs...))
}

// statsSampler caches an outbox's Stats for an interval; concurrent
// collections wait for one call instead of each making their own.
type statsSampler struct {
	outbox ports.OutboxAdmin
	opts   OutboxGaugeOptions
	now    func() time.Time
	log    *slog.Logger

	mu   sync.Mutex
	at   time.Time // when the last sample was taken (zero: never)
	last sample
	ok   bool // whether the last sample succeeded
}

// sample is one Stats result and the age of its oldest ready message.
type sample struct {
	stats ports.OutboxStats
	age   time.Duration
}

// get returns the current sample, taking a new one when the last is older
// than the interval; false when the last attempt failed.
func (s *statsSampler) get(ctx context.Context) (sample, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if !s.at.IsZero() && now.Sub(s.at) < s.opts.Interval {
		return s.last, s.ok
	}
	s.at = now
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	st, err := s.outbox.Stats(ctx)
	if err != nil {
		s.ok = false
		s.log.LogAttrs(ctx, slog.LevelWarn, "otelwharf: outbox gauges not sampled: Stats failed; retrying after the interval",
			slog.Duration("interval", s.opts.Interval), slog.String("error", err.Error()))
		return sample{}, false
	}
	s.last, s.ok = sample{stats: st}, true
	if !st.OldestReady.IsZero() {
		s.last.age = max(now.Sub(st.OldestReady), 0)
	}
	return s.last, true
}
