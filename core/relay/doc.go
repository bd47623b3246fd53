// Package relay delivers an outbox: it claims messages under a lease,
// hands each to the handler of its topic with bounded concurrency, and
// completes it, retries it with backoff, or dead-letters it.
//
//	hs := relay.NewHandlers()
//	_ = relay.HandleEvent(hs, OrderPlaced, sendConfirmation, relay.TopicOptions{})
//	r, _ := relay.New(drv.Outbox(), hs, relay.Options{})
//	go r.Run(ctx) // or r.Drain(ctx) for one pass
//
// The relay uses only the ports (ports.Outbox, and ports.OutboxNotifier
// when the outbox has it), so it runs on every provider. Handlers return
// nil (delivered), an error (retried with Backoff, dead-lettered once the
// attempts are used up), Permanent(err) (dead-lettered at once) or
// RetryAfter(err, d). EffectivelyOnce and EffectivelyOnceTx make handlers
// skip messages they already handled.
//
// One relay claims one batch at a time and runs up to Options.Concurrency
// handlers. Raise Concurrency for slow handlers (I/O-bound work); start
// more relays (in one process or several) when the claims themselves are
// the bottleneck, since each relay claims serially.
package relay
