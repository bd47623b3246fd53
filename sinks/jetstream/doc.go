// Package jetstream relays a wharf outbox into NATS JetStream:
// effectively once into the stream, in key order, with trace headers.
//
//	js, _ := jetstream.New(nc) // github.com/nats-io/nats.go/jetstream
//	pub, _ := wjs.NewPublisher(js, wjs.Options{})
//	hs := relay.NewHandlers()
//	_ = pub.Register(hs, relay.TopicOptions{}, "order.placed", "order.cancelled")
//	r, _ := relay.New(drv.Outbox(), hs, relay.Options{})
//	go r.Run(ctx)
//
// Each message is published to the subject its topic maps to
// (Options.Subject, DefaultSubject by default) with its headers as they are
// (W3C traceparent and tracestate included), the topic (HeaderTopic), the
// ordering key (HeaderKey) and Nats-Msg-Id set to the outbox message ID.
// The stream's duplicate window drops the copies that at-least-once
// redelivery produces (a relay killed after the publish and before the
// completion, an acknowledgement lost in an outage), so each message is
// stored once. The handler returns after the stream acknowledged the
// message, and the outbox hands out one message per ordering key at a
// time, so the messages of one key are stored in the order they were
// recorded, however many relays run.
//
// A Publisher is a relay handler (Handle, or Register for chosen topics)
// and a ports.EventBus (Publish), so hs.PublishEvents(pub, opts) publishes
// every event topic without a handler of its own; that catch-all hands over
// events, which carry no ordering key, so HeaderKey is then not set (key
// order in the stream holds all the same).
//
// A subject that no stream captures dead-letters the message at once with
// a last error naming the subject and the fix (ErrNoStream); an
// unreachable or restarting server is retried with the relay's backoff.
// EventFromMsg rebuilds the event in a consuming service.
//
// This is a module of its own (github.com/wharf-go/wharf/sinks/jetstream),
// so programs that use wharf without it never download NATS.
package jetstream
