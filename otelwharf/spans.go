package otelwharf

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/wharf-go/wharf/core"
)

// Attribute keys of wharf's own (the rest are OpenTelemetry's semantic
// conventions).
const (
	// AttrTopics lists the topics of an enqueue or claim of several.
	AttrTopics = attribute.Key("wharf.topics")
	// AttrTransactionAttempts is how many times a unit of work ran.
	AttrTransactionAttempts = attribute.Key("wharf.transaction.attempts")
	// AttrTransactionAttempt numbers the attempt a retry event ended.
	AttrTransactionAttempt = attribute.Key("wharf.transaction.attempt")
	// AttrTransactionOutcome is committed or rolled_back.
	AttrTransactionOutcome = attribute.Key("wharf.transaction.outcome")
	// AttrClaimLimit is the most messages a claim asked for.
	AttrClaimLimit = attribute.Key("wharf.claim.limit")
	// AttrMessageAttempt is a delivery's attempt (1 for the first).
	AttrMessageAttempt = attribute.Key("wharf.message.attempt")
	// AttrDeliveryOutcome is a delivery's outcome: delivered, retried,
	// dead, abandoned or released.
	AttrDeliveryOutcome = attribute.Key("wharf.delivery.outcome")
	// AttrIdempotencyNamespace is a reservation's namespace.
	AttrIdempotencyNamespace = attribute.Key("wharf.idempotency.namespace")
	// AttrIdempotencyOutcome is a reservation's outcome: reserved, replay,
	// in_progress, fingerprint_mismatch, or error (metrics only).
	AttrIdempotencyOutcome = attribute.Key("wharf.idempotency.outcome")
	// AttrOutboxState is a queue-depth point's state: ready, scheduled,
	// leased or dead.
	AttrOutboxState = attribute.Key("wharf.outbox.state")
)

// EventTransactionRetry is the name of a transaction span's event for
// each retryable error that made the transaction run again.
const EventTransactionRetry = "wharf.transaction.retry"

// The messaging system wharf is to the conventions.
var messagingSystem = semconv.MessagingSystemKey.String("wharf")

// Span start options, made once.
var (
	kindInternal = trace.WithSpanKind(trace.SpanKindInternal)
	kindProducer = trace.WithSpanKind(trace.SpanKindProducer)
	kindClient   = trace.WithSpanKind(trace.SpanKindClient)
	kindConsumer = trace.WithSpanKind(trace.SpanKindConsumer)
)

func noEnd(core.End) {}

// start is core.Hooks.Start.
func (in *Instrumentation) start(ctx context.Context, op core.Operation) (context.Context, func(core.End)) {
	switch op.Kind {
	case core.OpTransaction:
		return in.startTransaction(ctx, op)
	case core.OpAttempt:
		return in.startAttempt(ctx)
	case core.OpEnqueue:
		return in.startEnqueue(ctx, op)
	case core.OpClaim:
		return in.startClaim(ctx, op)
	case core.OpReserve:
		return in.startReserve(ctx, op)
	case core.OpDeliver:
		return in.startDeliver(ctx, op)
	}
	return ctx, noEnd // an operation this version does not know
}

func (in *Instrumentation) startTransaction(ctx context.Context, op core.Operation) (context.Context, func(core.End)) {
	ctx, span := in.tracer.Start(ctx, "wharf transaction", kindInternal)
	if span.IsRecording() {
		span.SetAttributes(dbSystem(op.Dialect))
	}
	if !span.IsRecording() {
		return ctx, noEnd // nothing to record: no SDK
	}
	return ctx, func(e core.End) {
		if span.IsRecording() {
			span.SetAttributes(AttrTransactionAttempts.Int(e.Attempts), AttrTransactionOutcome.String(e.Outcome))
			for i, r := range e.Retries {
				span.AddEvent(EventTransactionRetry, trace.WithAttributes(AttrTransactionAttempt.Int(i+1),
					semconv.ErrorType(r), semconv.ExceptionMessage(r.Error())))
			}
			if e.Err != nil {
				setError(span, e.Err)
			}
		}
		span.End()
	}
}

// startAttempt keeps the enqueues of one attempt of a unit of work's
// transaction, counted if that attempt commits (an attempt that rolled
// back before a retry counts nothing). Attempts have no span of their own.
func (in *Instrumentation) startAttempt(ctx context.Context) (context.Context, func(core.End)) {
	if !in.m.enqueued.Enabled(ctx) {
		return ctx, noEnd
	}
	tx := &txEnqueues{}
	return context.WithValue(ctx, txKey{}, tx), func(e core.End) {
		tx.end(ctx, in, e.Outcome == "committed")
	}
}

func (in *Instrumentation) startEnqueue(ctx context.Context, op core.Operation) (context.Context, func(core.End)) {
	ctx, span := in.tracer.Start(ctx, "send", kindProducer)
	if span.IsRecording() {
		attrs := []attribute.KeyValue{messagingSystem, semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("enqueue"), dbSystem(op.Dialect), semconv.DBCollectionName(op.Table)}
		if topic, one := sameTopic(op.Topics); one {
			span.SetName("send " + topic)
			attrs = append(attrs, semconv.MessagingDestinationName(topic))
		} else {
			attrs = append(attrs, AttrTopics.StringSlice(op.Topics))
		}
		if op.Count > 1 {
			attrs = append(attrs, semconv.MessagingBatchMessageCount(op.Count))
		}
		span.SetAttributes(attrs...)
	}
	if !span.IsRecording() && !in.m.enqueued.Enabled(ctx) {
		return ctx, noEnd
	}
	tx, _ := ctx.Value(txKey{}).(*txEnqueues)
	return ctx, func(e core.End) {
		if e.Err != nil && span.IsRecording() {
			setError(span, e.Err)
		}
		span.End()
		if e.Err != nil {
			return
		}
		if tx == nil || !tx.add(op.Topics) {
			in.m.countEnqueued(ctx, op.Topics)
		}
	}
}

func (in *Instrumentation) startClaim(ctx context.Context, op core.Operation) (context.Context, func(core.End)) {
	started := time.Now()
	return ctx, func(e core.End) {
		in.m.claimSize.Record(ctx, int64(e.Count))
		if e.Count == 0 && e.Err == nil {
			return // an idle poll: no span
		}
		_, span := in.tracer.Start(ctx, "receive", kindClient, trace.WithTimestamp(started))
		if span.IsRecording() {
			attrs := []attribute.KeyValue{messagingSystem, semconv.MessagingOperationTypeReceive,
				semconv.MessagingOperationName("claim"), semconv.MessagingBatchMessageCount(e.Count),
				AttrClaimLimit.Int(op.Count), dbSystem(op.Dialect), semconv.DBCollectionName(op.Table)}
			if len(op.Topics) == 1 {
				span.SetName("receive " + op.Topics[0])
				attrs = append(attrs, semconv.MessagingDestinationName(op.Topics[0]))
			} else if len(op.Topics) > 1 {
				attrs = append(attrs, AttrTopics.StringSlice(op.Topics))
			}
			span.SetAttributes(attrs...)
			if e.Err != nil {
				setError(span, e.Err)
			}
		}
		span.End()
	}
}

func (in *Instrumentation) startReserve(ctx context.Context, op core.Operation) (context.Context, func(core.End)) {
	ctx, span := in.tracer.Start(ctx, "reserve", kindClient)
	if span.IsRecording() {
		span.SetName("reserve " + op.Table)
		span.SetAttributes(dbSystem(op.Dialect), semconv.DBCollectionName(op.Table),
			semconv.DBOperationName("reserve"), AttrIdempotencyNamespace.String(op.Namespace))
	} else if !in.m.reservations.Enabled(ctx) {
		return ctx, noEnd
	}
	return ctx, func(e core.End) {
		outcome := e.Outcome
		if e.Err != nil {
			outcome = "error"
		}
		in.m.reservations.Add(ctx, 1, in.m.reserveOpt(op.Namespace, outcome))
		if span.IsRecording() {
			span.SetAttributes(AttrIdempotencyOutcome.String(outcome))
			if e.Err != nil {
				setError(span, e.Err)
			}
		}
		span.End()
	}
}

func (in *Instrumentation) startDeliver(ctx context.Context, op core.Operation) (context.Context, func(core.End)) {
	var topic string
	if len(op.Topics) > 0 {
		topic = op.Topics[0]
	}
	var span trace.Span
	if p, ok := producer(ctx); !ok {
		ctx, span = in.tracer.Start(ctx, "process", kindConsumer)
	} else if in.link {
		ctx, span = in.tracer.Start(ctx, "process", kindConsumer, trace.WithNewRoot(), trace.WithLinks(trace.Link{SpanContext: p}))
	} else {
		ctx, span = in.tracer.Start(ctx, "process", kindConsumer, trace.WithLinks(trace.Link{SpanContext: p}))
	}
	if span.IsRecording() {
		span.SetName(in.names.get("process ", topic))
	} else if !in.m.deliveries.Enabled(ctx) {
		return ctx, noEnd // nothing to record: no SDK
	}
	if op.Attempt == 1 && !op.CreatedAt.IsZero() && in.m.latency.Enabled(ctx) {
		in.m.latency.Record(ctx, max(in.now().Sub(op.CreatedAt), 0).Seconds(), in.m.topicOpt(topic))
	}
	id, attempt := op.MessageID, op.Attempt // not all of op: a smaller closure
	return ctx, func(e core.End) {
		opt := in.m.outcomeOpt(topic, e.Outcome)
		in.m.deliveries.Add(ctx, 1, opt)
		in.m.handler.Record(ctx, e.Duration.Seconds(), opt)
		if span.IsRecording() {
			// One call, so that the span's attributes are allocated once.
			span.SetAttributes(messagingSystem, semconv.MessagingOperationTypeProcess,
				semconv.MessagingOperationName("deliver"), semconv.MessagingDestinationName(topic),
				semconv.MessagingMessageID(id), AttrMessageAttempt.Int(attempt),
				AttrDeliveryOutcome.String(e.Outcome))
			if e.Err != nil {
				setError(span, e.Err)
			}
		}
		span.End()
	}
}

// spanNames caches span names made of a prefix and a topic or table.
type spanNames struct {
	m sync.Map // [2]string → string
	n atomic.Int64
}

func (c *spanNames) get(prefix, name string) string {
	k := [2]string{prefix, name}
	if v, ok := c.m.Load(k); ok {
		return v.(string)
	}
	s := prefix + name
	if c.n.Load() < maxCachedAttrs {
		if _, loaded := c.m.LoadOrStore(k, s); !loaded {
			c.n.Add(1)
		}
	}
	return s
}

// setError records err on span and marks it failed.
func setError(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(semconv.ErrorType(err))
}

// dbSystem is the db.system.name of a wharf dialect.
func dbSystem(dialect string) attribute.KeyValue {
	switch dialect {
	case "postgres":
		return semconv.DBSystemNamePostgreSQL
	case "mysql":
		return semconv.DBSystemNameMySQL
	case "sqlite":
		return semconv.DBSystemNameSQLite
	}
	return semconv.DBSystemNameKey.String(dialect)
}

// sameTopic returns the topic when every message has it.
func sameTopic(topics []string) (string, bool) {
	if len(topics) == 0 {
		return "", false
	}
	for _, t := range topics[1:] {
		if t != topics[0] {
			return "", false
		}
	}
	return topics[0], true
}
