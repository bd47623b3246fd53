package watermill_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	wm "github.com/wharf-go/wharf/sinks/watermill"
)

// TestNATSJetStreamThroughWatermill relays messages with two relays
// through Watermill's NATS adapter (JetStream, TrackMsgId: the message UUID
// becomes Nats-Msg-Id) to a real nats-server, and consumes them with the
// adapter's subscriber. One message in five is handed out twice (its first
// attempt fails after publishing, as when a relay dies before completing):
// the stream still holds each message once, and key order holds.
func TestNATSJetStreamThroughWatermill(t *testing.T) {
	t.Parallel()
	const n = 500
	url := startNATS(t)
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	st, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "orders", Subjects: []string{"orders"}})
	require.NoError(t, err)

	wpub, err := wnats.NewPublisher(wnats.PublisherConfig{URL: url, JetStream: wnats.JetStreamConfig{TrackMsgId: true}}, watermill.NopLogger{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = wpub.Close() })
	pub, err := wm.NewPublisher(wpub, wm.Options{Topic: func(string) string { return "orders" }})
	require.NoError(t, err)

	drv := openOutbox(t)
	msgs := workload(n, 20, "order.placed")
	ids, err := drv.Outbox().Enqueue(context.Background(), msgs...)
	require.NoError(t, err)
	redeliver := map[string]bool{}
	for i, id := range ids {
		if i%5 == 0 {
			redeliver[id] = true
		}
	}
	errAfterPublish := errors.New("failed after publishing (as if the relay died before completing)")
	hs := relay.NewHandlers()
	require.NoError(t, hs.Handle("order.placed", func(ctx context.Context, msg ports.ClaimedMessage) error {
		if err := pub.Handle(ctx, msg); err != nil {
			return err
		}
		if redeliver[msg.ID] && msg.Attempts == 1 {
			return errAfterPublish
		}
		return nil
	}, relay.TopicOptions{Backoff: relay.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}}))
	delivered := runRelays(t, 2, drv, hs, relay.Options{Concurrency: 16, PollInterval: 5 * time.Millisecond})
	require.EqualValues(t, n, delivered)

	info, err := st.Info(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, n, info.State.Msgs, "the stream dropped the %d redelivered copies", len(redeliver))

	sub, err := wnats.NewSubscriber(wnats.SubscriberConfig{
		URL: url, CloseTimeout: 5 * time.Second, AckWaitTimeout: 30 * time.Second,
		JetStream: wnats.JetStreamConfig{SubscribeOptions: []nats.SubOpt{nats.DeliverAll(), nats.AckExplicit()}},
	}, watermill.NopLogger{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	ch, err := sub.Subscribe(context.Background(), "orders")
	require.NoError(t, err)
	got, err := collect(ch, n)
	require.NoError(t, err)
	requireReceivedEachOnceInKeyOrder(t, got, ids, msgs, "order.placed")

	ev, err := wm.EventFromMessage("orders", got[0])
	require.NoError(t, err)
	require.Equal(t, "order.placed", ev.Name)
	require.Equal(t, got[0].UUID, ev.ID)
	require.Equal(t, traceparent, ev.Headers["traceparent"])
}
