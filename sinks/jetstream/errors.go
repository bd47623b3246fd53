package jetstream

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("jetstream: "+format+": %w", append(args, ports.ErrInvalidArgument)...)
}

// classify turns a failed publish into the handler's error: permanent when
// retrying cannot help, plain (retried with backoff) otherwise. ctx is the
// handler's.
func (p *Publisher) classify(ctx context.Context, err error, subject string, o outgoing) error {
	what := fmt.Sprintf("jetstream: publish message %s (topic %q) to subject %q", o.id, o.topic, subject)
	var apiErr *jetstream.APIError
	switch {
	case ctx.Err() != nil:
		// The relay cancelled the handler (lost claim, topic timeout,
		// shutdown): the message is redelivered later.
		return fmt.Errorf("%s: interrupted: %w", what, err)
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
		return fmt.Errorf("%s: no acknowledgement within AckTimeout %v (server down, slow or unreachable); retrying, and the duplicate window drops the copy if this one was stored: %w",
			what, p.opts.AckTimeout, err)
	case errors.Is(err, nats.ErrDisconnected):
		return fmt.Errorf("%s: the connection was lost before the acknowledgement; retrying, and the duplicate window drops the copy if this one was stored: %w", what, err)
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return fmt.Errorf("%s: MaxPending (%d) publishes await their acknowledgement; retrying: %w", what, p.opts.MaxPending, err)
	case errors.Is(err, jetstream.ErrNoStreamResponse), errors.Is(err, nats.ErrNoResponders):
		return p.noResponders(ctx, what, subject, err)
	case errors.Is(err, nats.ErrMaxPayload):
		return relay.Permanent(fmt.Errorf("%s: the message (%d bytes of payload) is larger than the server's max_payload; raise max_payload or send smaller messages, then requeue the dead letter: %w",
			what, len(o.payload), err))
	case errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrBadHeaderMsg):
		return relay.Permanent(fmt.Errorf("%s: the client refused the message: %w", what, err))
	case errors.As(err, &apiErr) && apiErr.Code >= 400 && apiErr.Code < 500:
		// The stream answered and refused this message for good (wrong
		// expected stream, message or headers too large, sealed stream,
		// failed expectation headers, ...): retrying sends the same.
		hint := ""
		if apiErr.ErrorCode == jsErrCodeStreamNotMatch && p.opts.Stream != "" {
			hint = fmt.Sprintf(" (the subject is captured by another stream than Options.Stream %q)", p.opts.Stream)
		}
		return relay.Permanent(fmt.Errorf("%s: the stream refused it%s: %w", what, hint, err))
	default:
		return fmt.Errorf("%s: %w", what, err)
	}
}

// jsErrCodeStreamNotMatch is the server's "expected stream does not match"
// (JSStreamNotMatchErr).
const jsErrCodeStreamNotMatch jetstream.ErrorCode = 10060

// noResponders tells a missing stream (permanent) from an unavailable one
// (retried): nothing answering a publish means either that no stream
// captures the subject or that the stream or JetStream is not ready (a
// restarting server, a leader election). Only the JetStream API saying that
// no stream captures the subject makes it permanent.
func (p *Publisher) noResponders(ctx context.Context, what, subject string, err error) error {
	lctx, cancel := context.WithTimeout(ctx, p.opts.AckTimeout)
	defer cancel()
	stream, lerr := p.js.StreamNameBySubject(lctx, subject)
	switch {
	case errors.Is(lerr, jetstream.ErrStreamNotFound):
		return relay.Permanent(fmt.Errorf("%s: %w: create a stream whose subjects include %q (or map the topic to a captured subject with Options.Subject), then requeue the dead letter",
			what, ErrNoStream, subject))
	case lerr == nil:
		return fmt.Errorf("%s: stream %q captures the subject but did not answer (not ready, or no leader); retrying: %w", what, stream, err)
	default:
		return fmt.Errorf("%s: nothing answered, and looking up the stream failed too (JetStream unavailable?); retrying: %w", what, errors.Join(err, lerr))
	}
}
