// Package otelwharf turns wharf's instrumentation hooks (core.Hooks) into
// OpenTelemetry traces and metrics, and carries the trace context across
// the outbox, so that one trace runs from the request that enqueued a
// message to the handler that delivered it, in another process minutes
// later if need be.
//
//	inst, err := otelwharf.New(otelwharf.Options{}) // global providers
//	drv, err := wharf.Open(ctx, url, wharf.Options{Hooks: inst.Hooks()})
//	r, err := relay.New(drv.Outbox(), hs, relay.Options{Hooks: inst.Hooks()})
//	reg, err := inst.ObserveOutbox(drv.Outbox(), otelwharf.OutboxGaugeOptions{})
//
// It is a module of its own so that wharf's ports, core and providers stay
// free of OpenTelemetry. It uses the OpenTelemetry API only: the
// application chooses the SDK, exporters and sampling.
//
// # Spans
//
// They follow OpenTelemetry's database and messaging semantic conventions
// (semconv v1.40.0; messaging.system is "wharf"):
//
//   - "wharf transaction" (internal): a unit of work's Transaction, all its
//     attempts; attributes db.system.name, wharf.transaction.attempts and
//     wharf.transaction.outcome (committed, rolled_back); one
//     "wharf.transaction.retry" event per retryable error that made it run
//     again, with the error; error status when it failed.
//   - "send TOPIC" (producer): an Outbox.Enqueue; messaging.operation.type
//     send, messaging.operation.name enqueue, messaging.destination.name
//     (when every message has the same topic; wharf.topics lists several),
//     messaging.batch.message_count (batches of two or more),
//     db.collection.name (the outbox table). The trace context injected
//     into the messages' headers is this span's.
//   - "receive [TOPIC]" (client): an Outbox.Claim that handed out messages
//     or failed; messaging.operation.type receive, operation name claim,
//     messaging.batch.message_count (messages handed out) and
//     wharf.claim.limit. Claims that found nothing (a relay's idle polls)
//     record no span, so that idle relays do not fill the trace store;
//     they are counted in the wharf.outbox.claim.size histogram.
//   - "process TOPIC" (consumer): one handler call of a relay, ended when
//     its outcome is recorded; messaging.operation.type process, operation
//     name deliver, messaging.destination.name, messaging.message.id,
//     wharf.message.attempt, wharf.delivery.outcome (delivered, retried,
//     dead, abandoned, released); the handler's error and error status
//     when it failed. The handler's context carries this span.
//   - "reserve TABLE" (client): an Idempotency.Reserve; db.operation.name
//     reserve, db.collection.name, wharf.idempotency.namespace and
//     wharf.idempotency.outcome (reserved, replay, in_progress,
//     fingerprint_mismatch).
//
// # Across the outbox
//
// Enqueue writes the trace context (W3C traceparent and tracestate, and
// baggage, with the configured propagator) into each message's headers;
// headers the message already has win. The relay extracts them, and the
// delivery span is a child of the producing span and also carries a link
// to it. The messaging conventions require the link (it is what relates
// consumer and producer when a batch is processed) and allow the parent
// when one message is processed at a time, as a wharf handler does: with
// both, the request, its transaction, the enqueue and every delivery
// attempt are one trace, in any backend. A message delivered hours after
// its request (retries, a backlog) makes a long trace; set
// Options.LinkDeliveries to start each delivery in a new trace that only
// links to the producer instead.
//
// # Metrics
//
// Counters: wharf.outbox.enqueued (messages, by
// messaging.destination.name; a unit of work's enqueues count when it
// commits, and not at all when it rolls back), wharf.relay.deliveries (by
// topic and wharf.delivery.outcome: delivered, retried, dead, abandoned,
// released), wharf.idempotency.reservations (by
// wharf.idempotency.namespace and wharf.idempotency.outcome, "error" for a
// failed call). Histograms: wharf.relay.handler.duration (seconds, by topic
// and outcome), wharf.relay.latency (seconds from a message's enqueue to
// the start of its first handler call, by topic), wharf.outbox.claim.size
// (messages handed out per claim, idle polls included). Gauges, per
// observed outbox (Instrumentation.ObserveOutbox): wharf.outbox.messages
// (by wharf.outbox.state: ready, scheduled, leased, dead) and
// wharf.outbox.oldest_ready.age (seconds). Relays given OnRelayFailure
// count their failed claims, completions, lease extensions and releases in
// wharf.relay.failures (by wharf.relay.operation).
//
// A unit of work that ran several attempts (retryable conflicts) counts the
// enqueues of the attempt that committed only (core.OpAttempt); attempts
// have no span of their own, and the transaction's span records them as
// events.
//
// # Cost
//
// With a no-op provider (no SDK installed) the hooks start no-op spans and
// build no attributes: a span's attributes are set only when it is
// recording. Measurement options and span names are cached per topic and
// outcome. docs/observability.md has the overhead measured by make
// bench-otel.
package otelwharf
