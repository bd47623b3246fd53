package jetstream_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
	wjs "github.com/wharf-go/wharf/sinks/jetstream"
)

// TestEventFromMsgRoundTrip publishes a message and rebuilds its event from
// what a consumer receives.
func TestEventFromMsgRoundTrip(t *testing.T) {
	t.Parallel()
	srv := startNATS(t)
	_, js := connect(t, srv.url())
	st := createStream(t, js, "ORDERS", "order.>")
	pub, err := wjs.NewPublisher(js, wjs.Options{})
	require.NoError(t, err)
	at := time.Date(2026, 5, 6, 7, 8, 9, 123456000, time.UTC)
	msg := claimed("01J-round", "order.placed", "customer-7", map[string]string{
		"traceparent": traceparent, core.HeaderOccurredAt: core.FormatTime(at),
	})
	require.NoError(t, pub.Handle(context.Background(), msg))

	cons, err := st.OrderedConsumer(context.Background(), jetstream.OrderedConsumerConfig{})
	require.NoError(t, err)
	got, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	require.NoError(t, err)
	ev, err := wjs.EventFromMsg(got)
	require.NoError(t, err)
	require.Equal(t, ports.Event{
		ID: "01J-round", Name: "order.placed", Payload: msg.Payload,
		Headers: map[string]string{"traceparent": traceparent}, OccurredAt: at,
	}, ev)
	require.Equal(t, "customer-7", got.Headers().Get(wjs.HeaderKey))
}

// fakeMsg is a message that no Publisher published.
type fakeMsg struct {
	subject string
	headers nats.Header
}

func (m fakeMsg) Subject() string      { return m.subject }
func (m fakeMsg) Headers() nats.Header { return m.headers }
func (m fakeMsg) Data() []byte         { return []byte(`{}`) }

func TestEventFromMsgRejectsForeignMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		msg      fakeMsg
		contains string
	}{
		{name: "NoMessageID", msg: fakeMsg{subject: "order.placed"}, contains: "no Nats-Msg-Id header"},
		{name: "UnreadableOccurredAt", msg: fakeMsg{subject: "order.placed", headers: nats.Header{
			jetstream.MsgIDHeader: {"m1"}, core.HeaderOccurredAt: {"yesterday"},
		}}, contains: `header wharf-occurred-at "yesterday"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := wjs.EventFromMsg(tt.msg)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.Contains(t, err.Error(), tt.contains)
		})
	}
	t.Run("SubjectNamesAnEventWithoutTopicHeader", func(t *testing.T) {
		t.Parallel()
		ev, err := wjs.EventFromMsg(fakeMsg{subject: "order.placed", headers: nats.Header{jetstream.MsgIDHeader: {"m2"}}})
		require.NoError(t, err)
		require.Equal(t, "order.placed", ev.Name)
		require.Equal(t, "m2", ev.ID)
	})
}
