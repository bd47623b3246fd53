package jetstream_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	wjs "github.com/wharf-go/wharf/sinks/jetstream"
)

const (
	traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tracestate  = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
)

// claimed builds a claimed message as a relay hands it to a handler.
func claimed(id, topic, key string, headers map[string]string) ports.ClaimedMessage {
	return ports.ClaimedMessage{ID: id, Kind: ports.KindEvent, Topic: topic, Key: key, Payload: []byte(`{"order":"o-1"}`), Headers: headers, Attempts: 1, MaxAttempts: 5}
}

func TestPublisherPublishesMessages(t *testing.T) {
	t.Parallel()
	srv := startNATS(t)
	_, js := connect(t, srv.url())
	st := createStream(t, js, "ORDERS", "order.>", "raw_topic._")
	ctx := context.Background()

	t.Run("TopicBecomesSubjectAndHeadersTravel", func(t *testing.T) {
		pub, err := wjs.NewPublisher(js, wjs.Options{})
		require.NoError(t, err)
		msg := claimed("01J-headers", "order.placed", "customer-7", map[string]string{
			"traceparent": traceparent, "tracestate": tracestate, "tenant": "acme", core.HeaderOccurredAt: "2026-01-02T03:04:05.123456Z",
		})
		require.NoError(t, pub.Handle(ctx, msg))

		got, err := st.GetLastMsgForSubject(ctx, "order.placed")
		require.NoError(t, err)
		require.JSONEq(t, `{"order":"o-1"}`, string(got.Data))
		require.Equal(t, "01J-headers", got.Header.Get(jetstream.MsgIDHeader), "Nats-Msg-Id is the outbox message ID")
		require.Equal(t, traceparent, got.Header.Get("traceparent"), "traceparent travels as it came")
		require.Equal(t, tracestate, got.Header.Get("tracestate"), "tracestate travels as it came")
		require.Equal(t, "acme", got.Header.Get("tenant"))
		require.Equal(t, "order.placed", got.Header.Get(wjs.HeaderTopic))
		require.Equal(t, "customer-7", got.Header.Get(wjs.HeaderKey))
		require.Equal(t, "2026-01-02T03:04:05.123456Z", got.Header.Get(core.HeaderOccurredAt))
	})

	t.Run("SameIDIsStoredOnce", func(t *testing.T) {
		pub, err := wjs.NewPublisher(js, wjs.Options{})
		require.NoError(t, err)
		before := streamCount(t, st)
		msg := claimed("01J-dup", "order.shipped", "", nil)
		for range 3 {
			require.NoError(t, pub.Handle(ctx, msg), "a redelivery is acknowledged")
		}
		require.Equal(t, before+1, streamCount(t, st), "the duplicate window dropped the redeliveries")
		got, err := st.GetLastMsgForSubject(ctx, "order.shipped")
		require.NoError(t, err)
		require.Empty(t, got.Header.Get(wjs.HeaderKey), "no key header without a key")
	})

	t.Run("SubjectMappingIsApplied", func(t *testing.T) {
		pub, err := wjs.NewPublisher(js, wjs.Options{Subject: func(topic string) string { return "order.v2." + topic }})
		require.NoError(t, err)
		require.NoError(t, pub.Handle(ctx, claimed("01J-mapped", "refunded", "", nil)))
		got, err := st.GetLastMsgForSubject(ctx, "order.v2.refunded")
		require.NoError(t, err)
		require.Equal(t, "refunded", got.Header.Get(wjs.HeaderTopic))
	})

	t.Run("DefaultSubjectSanitizesTopics", func(t *testing.T) {
		pub, err := wjs.NewPublisher(js, wjs.Options{})
		require.NoError(t, err)
		require.NoError(t, pub.Handle(ctx, claimed("01J-raw", "raw topic.", "", nil)))
		got, err := st.GetLastMsgForSubject(ctx, "raw_topic._")
		require.NoError(t, err)
		require.Equal(t, "raw topic.", got.Header.Get(wjs.HeaderTopic), "the topic header keeps the topic as it is")
	})

	t.Run("OwnHeadersWinOverOutboxHeaders", func(t *testing.T) {
		pub, err := wjs.NewPublisher(js, wjs.Options{})
		require.NoError(t, err)
		require.NoError(t, pub.Handle(ctx, claimed("01J-own", "order.own", "k", map[string]string{
			jetstream.MsgIDHeader: "forged", wjs.HeaderTopic: "forged", wjs.HeaderKey: "forged",
		})))
		got, err := st.GetLastMsgForSubject(ctx, "order.own")
		require.NoError(t, err)
		require.Equal(t, "01J-own", got.Header.Get(jetstream.MsgIDHeader))
		require.Equal(t, "order.own", got.Header.Get(wjs.HeaderTopic))
		require.Equal(t, "k", got.Header.Get(wjs.HeaderKey))
	})

	t.Run("ExpectedStreamIsAccepted", func(t *testing.T) {
		pub, err := wjs.NewPublisher(js, wjs.Options{Stream: "ORDERS"})
		require.NoError(t, err)
		require.NoError(t, pub.Handle(ctx, claimed("01J-expected", "order.expected", "", nil)))
	})

	t.Run("EventBusPublishesEvents", func(t *testing.T) {
		pub, err := wjs.NewPublisher(js, wjs.Options{})
		require.NoError(t, err)
		at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		require.NoError(t, pub.Publish(ctx, ports.Event{ID: "01J-event", Name: "order.bus", Payload: []byte(`{"n":1}`), Headers: map[string]string{"traceparent": traceparent}, OccurredAt: at}))
		got, err := st.GetLastMsgForSubject(ctx, "order.bus")
		require.NoError(t, err)
		require.Equal(t, "01J-event", got.Header.Get(jetstream.MsgIDHeader))
		require.Equal(t, traceparent, got.Header.Get("traceparent"))
		require.Equal(t, core.FormatTime(at), got.Header.Get(core.HeaderOccurredAt))

		err = pub.Publish(ctx, ports.Event{Name: "order.bus", Payload: []byte(`{}`)})
		require.ErrorIs(t, err, ports.ErrInvalidArgument, "an event without an ID cannot be deduplicated")
		require.True(t, relay.IsPermanent(err))
	})
}

// TestPublisherClassifiesFailures checks which failures dead-letter at once
// (relay.Permanent) and which are retried, each with a message that says
// what happened.
func TestPublisherClassifiesFailures(t *testing.T) {
	t.Parallel()
	srv := startNATS(t)
	_, js := connect(t, srv.url())
	createStream(t, js, "ORDERS", "order.>")
	createStream(t, js, "AUDIT", "audit.>")
	ctx := context.Background()

	tests := []struct {
		name      string
		opts      wjs.Options
		msg       ports.ClaimedMessage
		permanent bool
		is        error
		contains  []string
	}{
		{
			name: "NoStreamCapturesTheSubject", msg: claimed("m1", "invoice.sent", "", nil),
			permanent: true, is: wjs.ErrNoStream,
			contains: []string{`subject "invoice.sent"`, `topic "invoice.sent"`, "no JetStream stream captures the subject", "create a stream whose subjects include"},
		},
		{
			name: "AnotherStreamThanExpected", opts: wjs.Options{Stream: "ORDERS"}, msg: claimed("m2", "audit.login", "", nil),
			permanent: true, contains: []string{`another stream than Options.Stream "ORDERS"`, "expected stream does not match"},
		},
		{
			name: "MappingToAWildcard", opts: wjs.Options{Subject: func(string) string { return "order.*" }}, msg: claimed("m3", "order.placed", "", nil),
			permanent: true, is: ports.ErrInvalidArgument, contains: []string{`maps to subject "order.*"`, "wildcard", "fix Options.Subject"},
		},
		{
			name: "MappingToNothing", opts: wjs.Options{Subject: func(string) string { return "" }}, msg: claimed("m4", "order.placed", "", nil),
			permanent: true, is: ports.ErrInvalidArgument, contains: []string{"is empty"},
		},
		{
			name: "HeaderNameNATSRefuses", msg: claimed("m5", "order.placed", "", map[string]string{"bad header": "v"}),
			permanent: true, is: ports.ErrInvalidArgument, contains: []string{`header name "bad header"`, "rename it"},
		},
		{
			name: "PayloadOverMaxPayload", msg: ports.ClaimedMessage{ID: "m6", Topic: "order.big", Payload: []byte(`"` + strings.Repeat("x", 2<<20) + `"`)},
			permanent: true, contains: []string{"larger than the server's max_payload"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pub, err := wjs.NewPublisher(js, tt.opts)
			require.NoError(t, err)
			err = pub.Handle(ctx, tt.msg)
			require.Error(t, err)
			require.Equal(t, tt.permanent, relay.IsPermanent(err), "permanent: %v", err)
			if tt.is != nil {
				require.ErrorIs(t, err, tt.is)
			}
			for _, s := range tt.contains {
				require.Contains(t, err.Error(), s)
			}
			require.Contains(t, err.Error(), "message "+tt.msg.ID, "the error names the message")
		})
	}
}

// TestPublisherRetriesOutages checks that an unreachable server and a
// cancelled handler are plain errors (retried with backoff), never dead
// letters.
func TestPublisherRetriesOutages(t *testing.T) {
	t.Parallel()
	srv := startNATS(t)
	_, js := connect(t, srv.url())
	createStream(t, js, "ORDERS", "order.>")
	pub, err := wjs.NewPublisher(js, wjs.Options{AckTimeout: 300 * time.Millisecond})
	require.NoError(t, err)

	t.Run("CancelledHandlerContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := pub.Handle(ctx, claimed("c1", "order.placed", "", nil))
		require.Error(t, err)
		require.False(t, relay.IsPermanent(err), "retried: %v", err)
		require.ErrorIs(t, err, context.Canceled)
		require.Contains(t, err.Error(), "interrupted")
	})

	t.Run("ServerDown", func(t *testing.T) {
		srv.shutdown()
		err := pub.Handle(context.Background(), claimed("c2", "order.placed", "", nil))
		require.Error(t, err)
		require.False(t, relay.IsPermanent(err), "an outage is retried: %v", err)
		// Depending on when the client notices, the wait ends with the
		// disconnection or with AckTimeout.
		require.True(t, errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, nats.ErrDisconnected), "%v", err)
		require.Contains(t, err.Error(), "retrying")
	})
}

func TestNewPublisherRejectsBadArguments(t *testing.T) {
	t.Parallel()
	srv := startNATS(t)
	_, js := connect(t, srv.url())
	tests := []struct {
		name     string
		js       jetstream.JetStream
		opts     wjs.Options
		contains string
	}{
		{name: "NilJetStream", js: nil, contains: "nil JetStream context or connection"},
		{name: "NegativeMaxPending", js: js, opts: wjs.Options{MaxPending: -1}, contains: "MaxPending -1 is negative"},
		{name: "NegativeAckTimeout", js: js, opts: wjs.Options{AckTimeout: -time.Second}, contains: "AckTimeout -1s is negative"},
		{name: "StreamNameWithADot", js: js, opts: wjs.Options{Stream: "orders.v1"}, contains: `Stream "orders.v1" is not a valid stream name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pub, err := wjs.NewPublisher(tt.js, tt.opts)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.Contains(t, err.Error(), tt.contains)
			require.Nil(t, pub)
		})
	}
}

func TestRegister(t *testing.T) {
	t.Parallel()
	srv := startNATS(t)
	_, js := connect(t, srv.url())
	pub, err := wjs.NewPublisher(js, wjs.Options{})
	require.NoError(t, err)

	t.Run("RegistersEachTopic", func(t *testing.T) {
		hs := relay.NewHandlers()
		require.NoError(t, pub.Register(hs, relay.TopicOptions{}, "order.placed", "order.shipped"))
		require.Equal(t, []string{"order.placed", "order.shipped"}, hs.Topics())
	})
	t.Run("RefusesBadArguments", func(t *testing.T) {
		tests := []struct {
			name     string
			hs       *relay.Handlers
			topics   []string
			contains string
		}{
			{name: "NilHandlers", hs: nil, topics: []string{"a"}, contains: "nil handler set"},
			{name: "NoTopics", hs: relay.NewHandlers(), contains: "hs.PublishEvents"},
			{name: "TopicTwice", hs: relay.NewHandlers(), topics: []string{"a", "a"}, contains: "already registered"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := pub.Register(tt.hs, relay.TopicOptions{}, tt.topics...)
				require.ErrorIs(t, err, ports.ErrInvalidArgument)
				require.Contains(t, err.Error(), tt.contains)
			})
		}
	})
}

func TestDefaultSubject(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, topic, want string }{
		{"DottedTopicIsKept", "order.placed", "order.placed"},
		{"SlashesAndDashesAreKept", "orders/placed-v2", "orders/placed-v2"},
		{"SpaceBecomesUnderscore", "order placed", "order_placed"},
		{"StarWildcardIsReplaced", "order.*", "order._"},
		{"TailWildcardIsReplaced", "order.>", "order._"},
		{"EmptyTokensAreFilled", ".order..placed.", "_.order._.placed._"},
		{"SystemPrefixIsReplaced", "$JS.API.STREAM.DELETE.X", "_JS.API.STREAM.DELETE.X"},
		{"ControlCharacterIsReplaced", "tab\there", "tab_here"},
		{"UnicodeIsKept", "commande.créée", "commande.créée"},
		{"InvalidUTF8IsReplaced", "bad\xffutf8", "bad_utf8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, wjs.DefaultSubject(tt.topic), "topic %q", tt.topic)
		})
	}
}
