package watermill_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	_ "github.com/wharf-go/wharf/providers/sqlite"
	wm "github.com/wharf-go/wharf/sinks/watermill"
)

// Example relays an outbox message through a Watermill publisher (here the
// in-memory gochannel; Kafka, AMQP, SQS, ... work the same) to a
// subscriber.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "wharf-example")
	defer os.RemoveAll(dir)
	drv, err := wharf.Open(ctx, "file:"+filepath.Join(dir, "orders.db"), wharf.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer drv.Close()
	if err := drv.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	// In a service, the message is enqueued in the transaction of the
	// business write (tx.Events or tx.Outbox of a unit of work).
	id, err := drv.Outbox().Enqueue(ctx, ports.OutboxMessage{
		Topic: "order.placed", Key: "c-42", Payload: []byte(`{"order_id":"o-1001"}`),
		Headers: map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	})
	if err != nil {
		log.Fatal(err)
	}

	broker := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1}, watermill.NopLogger{})
	defer broker.Close()
	received, err := broker.Subscribe(ctx, "orders.placed")
	if err != nil {
		log.Fatal(err)
	}

	pub, err := wm.NewPublisher(broker, wm.Options{
		Topic: func(topic string) string { return strings.Replace(topic, "order.", "orders.", 1) },
	})
	if err != nil {
		log.Fatal(err)
	}
	hs := relay.NewHandlers()
	if err := pub.Register(hs, relay.TopicOptions{}, "order.placed"); err != nil {
		log.Fatal(err)
	}
	r, err := relay.New(drv.Outbox(), hs, relay.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := r.Drain(ctx); err != nil {
		log.Fatal(err)
	}

	msg := <-received
	msg.Ack()
	ev, err := wm.EventFromMessage("orders.placed", msg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("UUID is the outbox ID:", msg.UUID == id[0])
	fmt.Println(ev.Name, string(ev.Payload), msg.Metadata.Get(wm.HeaderKey))
	fmt.Println("trace:", msg.Metadata.Get("traceparent"))
	// Output:
	// UUID is the outbox ID: true
	// order.placed {"order_id":"o-1001"} c-42
	// trace: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
}
