package otelwharf

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
)

// Metric names (see the package doc for their attributes).
const (
	// MetricEnqueued counts enqueued messages.
	MetricEnqueued = "wharf.outbox.enqueued"
	// MetricDeliveries counts handler calls by outcome.
	MetricDeliveries = "wharf.relay.deliveries"
	// MetricHandlerDuration is the handlers' duration histogram.
	MetricHandlerDuration = "wharf.relay.handler.duration"
	// MetricLatency is the enqueue→first handler call histogram.
	MetricLatency = "wharf.relay.latency"
	// MetricClaimSize is the messages-per-claim histogram.
	MetricClaimSize = "wharf.outbox.claim.size"
	// MetricReservations counts idempotency reservations by outcome.
	MetricReservations = "wharf.idempotency.reservations"
	// MetricOutboxMessages is the queue-depth gauge.
	MetricOutboxMessages = "wharf.outbox.messages"
	// MetricOldestReadyAge is the gauge of the oldest ready message's age.
	MetricOldestReadyAge = "wharf.outbox.oldest_ready.age"
)

// Histogram bucket boundaries.
var (
	// durationBuckets are the conventions' advice for durations in seconds.
	durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	// latencyBuckets reach further: a backlog or a scheduled message waits
	// minutes.
	latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600}
	// claimBuckets: messages per claim (relay.DefaultBatchSize is 100).
	claimBuckets = []float64{0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000}
)

// maxCachedAttrs bounds each cache of measurement options: past it, the
// options are built at each measurement (an application with that many
// topics pays a few allocations more per message).
const maxCachedAttrs = 4096

// instruments are the synchronous instruments and the gauges.
type instruments struct {
	enqueued     metric.Int64Counter
	deliveries   metric.Int64Counter
	handler      metric.Float64Histogram
	latency      metric.Float64Histogram
	claimSize    metric.Int64Histogram
	reservations metric.Int64Counter
	messages     metric.Int64ObservableGauge
	oldestAge    metric.Float64ObservableGauge
	failures     metric.Int64Counter

	byTopic   attrCache // topic
	byOutcome attrCache // topic, delivery outcome
	byReserve attrCache // namespace, reservation outcome
	byFailure attrCache // relay operation
}

func (m *instruments) init(meter metric.Meter) error {
	var err, e error
	m.enqueued, e = meter.Int64Counter(MetricEnqueued, metric.WithUnit("{message}"),
		metric.WithDescription("Messages enqueued into the outbox (in a unit of work: counted when it commits)."))
	err = errors.Join(err, e)
	m.deliveries, e = meter.Int64Counter(MetricDeliveries, metric.WithUnit("{message}"),
		metric.WithDescription("Handler calls of relays, by outcome: delivered, retried, dead, abandoned, released."))
	err = errors.Join(err, e)
	m.handler, e = meter.Float64Histogram(MetricHandlerDuration, metric.WithUnit("s"),
		metric.WithDescription("How long relays' handlers ran, by topic and outcome."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	err = errors.Join(err, e)
	m.latency, e = meter.Float64Histogram(MetricLatency, metric.WithUnit("s"),
		metric.WithDescription("Time from a message's enqueue to the start of its first handler call."),
		metric.WithExplicitBucketBoundaries(latencyBuckets...))
	err = errors.Join(err, e)
	m.claimSize, e = meter.Int64Histogram(MetricClaimSize, metric.WithUnit("{message}"),
		metric.WithDescription("Messages handed out per outbox claim (idle polls count 0)."),
		metric.WithExplicitBucketBoundaries(claimBuckets...))
	err = errors.Join(err, e)
	m.reservations, e = meter.Int64Counter(MetricReservations, metric.WithUnit("{reservation}"),
		metric.WithDescription("Idempotency reservations by outcome: reserved, replay, in_progress, fingerprint_mismatch, error."))
	err = errors.Join(err, e)
	m.messages, e = meter.Int64ObservableGauge(MetricOutboxMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Messages in the outbox by state: ready, scheduled, leased, dead (sampled, see OutboxGaugeOptions.Interval)."))
	err = errors.Join(err, e)
	m.oldestAge, e = meter.Float64ObservableGauge(MetricOldestReadyAge, metric.WithUnit("s"),
		metric.WithDescription("Age of the oldest ready message: how far behind the relays are (0 when none is ready)."))
	err = errors.Join(err, e)
	return errors.Join(err, m.initFailures(meter))
}

// countEnqueued adds enqueued messages, one topic run at a time.
func (m *instruments) countEnqueued(ctx context.Context, topics []string) {
	for i := 0; i < len(topics); {
		j := i + 1
		for j < len(topics) && topics[j] == topics[i] {
			j++
		}
		m.enqueued.Add(ctx, int64(j-i), m.topicOpt(topics[i]))
		i = j
	}
}

func (m *instruments) topicOpt(topic string) metric.MeasurementOption {
	return m.byTopic.get(topic, "", func() attribute.Set {
		return attribute.NewSet(semconv.MessagingDestinationName(topic))
	})
}

func (m *instruments) outcomeOpt(topic, outcome string) metric.MeasurementOption {
	return m.byOutcome.get(topic, outcome, func() attribute.Set {
		return attribute.NewSet(semconv.MessagingDestinationName(topic), AttrDeliveryOutcome.String(outcome))
	})
}

func (m *instruments) reserveOpt(namespace, outcome string) metric.MeasurementOption {
	return m.byReserve.get(namespace, outcome, func() attribute.Set {
		return attribute.NewSet(AttrIdempotencyNamespace.String(namespace), AttrIdempotencyOutcome.String(outcome))
	})
}

// attrCache keeps measurement options by up to two strings, so that the
// hot path builds no attribute set.
type attrCache struct {
	m sync.Map // attrKey → metric.MeasurementOption
	n atomic.Int64
}

type attrKey struct{ a, b string }

func (c *attrCache) get(a, b string, set func() attribute.Set) metric.MeasurementOption {
	k := attrKey{a, b}
	if v, ok := c.m.Load(k); ok {
		return v.(metric.MeasurementOption)
	}
	opt := metric.WithAttributeSet(set())
	if c.n.Load() < maxCachedAttrs {
		if _, loaded := c.m.LoadOrStore(k, opt); !loaded {
			c.n.Add(1)
		}
	}
	return opt
}

// txKey keeps the txEnqueues of a transaction's attempt in its context.
type txKey struct{}

// txEnqueues holds the topics of the enqueues of one attempt of a unit of
// work's transaction until it ends: they are counted if it commits.
type txEnqueues struct {
	mu     sync.Mutex
	topics []string
	ended  bool
}

// add keeps topics for the commit; false means the unit of work already
// ended (an enqueue on its context afterwards), so the caller counts them.
func (t *txEnqueues) add(topics []string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return false
	}
	t.topics = append(t.topics, topics...)
	return true
}

func (t *txEnqueues) end(ctx context.Context, in *Instrumentation, committed bool) {
	t.mu.Lock()
	topics := t.topics
	t.topics, t.ended = nil, true
	t.mu.Unlock()
	if committed {
		in.m.countEnqueued(ctx, topics)
	}
}
