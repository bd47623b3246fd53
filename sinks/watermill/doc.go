// Package watermill relays a wharf outbox through any Watermill
// message.Publisher (github.com/ThreeDotsLabs/watermill), so outbox
// messages reach Kafka, AMQP, Google Cloud Pub/Sub, SQS, NATS and the rest
// through Watermill's own adapters.
//
//	pub, _ := wm.NewPublisher(kafkaPublisher, wm.Options{})
//	hs := relay.NewHandlers()
//	_ = pub.Register(hs, relay.TopicOptions{}, "order.placed", "order.cancelled")
//	r, _ := relay.New(drv.Outbox(), hs, relay.Options{})
//	go r.Run(ctx)
//
// A Publisher is a relay handler (Handle, or Register for chosen topics)
// and a ports.EventBus (Publish), so hs.PublishEvents(pub, opts) publishes
// every event topic without a handler of its own (events carry no ordering
// key, so HeaderKey is then not set).
//
// Each outbox message becomes one Watermill message: the outbox message ID
// is its UUID, the payload its body, and the headers its metadata, as they
// are (W3C traceparent and tracestate included), plus HeaderTopic and
// HeaderKey. It is published to the Watermill topic Options.Topic maps the
// outbox topic to (the outbox topic itself by default), and the handler
// returns when Publish returns, so the relay completes a message only after
// the publisher accepted it. Brokers that deduplicate on the message UUID
// (watermill-nats with JetStream.TrackMsgId, for example) store each
// message once despite at-least-once redelivery; others may deliver a
// redelivered message twice, so consumers deduplicate on the UUID.
//
// The module requires Watermill v1.4.7 or later: the message.Publisher
// interface is the same in v1.4 and v1.5, and a program on a newer
// Watermill builds this package against that one.
//
// This is a module of its own (github.com/wharf-go/wharf/sinks/watermill),
// so programs that use wharf without it never download Watermill.
package watermill
