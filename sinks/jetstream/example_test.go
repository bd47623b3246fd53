package jetstream_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
	_ "github.com/wharf-go/wharf/providers/sqlite"
	wjs "github.com/wharf-go/wharf/sinks/jetstream"
)

// OrderPlaced is the event the orders service records with each order.
var OrderPlaced = core.DefineEvent[OrderPlacedPayload]("order.placed")

type OrderPlacedPayload struct {
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
	TotalCents int    `json:"total_cents"`
}

// Example shows an orders service that writes an order and its
// OrderPlaced event in one transaction and relays the outbox into
// JetStream, and a billing service that consumes the event from the
// stream.
func Example() {
	ctx := context.Background()
	natsURL, stop := startExampleServer() // your NATS cluster's URL instead
	defer stop()
	dir, _ := os.MkdirTemp("", "wharf-example")
	defer os.RemoveAll(dir)

	// --- The orders service ---
	drv, err := wharf.Open(ctx, "file:"+filepath.Join(dir, "orders.db"), wharf.Options{
		// One customer's events reach the stream in the order they happened.
		EventKey: func(ev ports.Event) string { return ev.Headers["customer"] },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer drv.Close()
	if err := drv.Migrate(ctx); err != nil {
		log.Fatal(err)
	}
	if _, err := drv.DB().ExecContext(ctx, `CREATE TABLE orders (id TEXT PRIMARY KEY, customer_id TEXT, total_cents INTEGER)`); err != nil {
		log.Fatal(err)
	}
	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (wharf.Tx, error) { return tx, nil }, wharf.UnitOfWorkOptions{})
	if err != nil {
		log.Fatal(err)
	}
	// The order and its event commit together, or neither does.
	err = uow.Transaction(ctx, func(ctx context.Context, tx wharf.Tx) error {
		if _, err := tx.DB.ExecContext(ctx, `INSERT INTO orders VALUES (?, ?, ?)`, "o-1001", "c-42", 4599); err != nil {
			return err
		}
		ev, err := OrderPlaced.New(OrderPlacedPayload{OrderID: "o-1001", CustomerID: "c-42", TotalCents: 4599})
		if err != nil {
			return err
		}
		ev.Headers = map[string]string{"customer": "c-42", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
		return tx.Events.Record(ctx, ev)
	})
	if err != nil {
		log.Fatal(err)
	}

	// Its relay publishes the event's topic to JetStream (subject = topic).
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	// The stream keeps two hours of Nats-Msg-Id for deduplication: longer
	// than any redelivery takes.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"order.>"}, Duplicates: 2 * time.Hour}); err != nil {
		log.Fatal(err)
	}
	pub, err := wjs.NewPublisher(js, wjs.Options{Stream: "ORDERS"})
	if err != nil {
		log.Fatal(err)
	}
	hs := relay.NewHandlers()
	if err := pub.Register(hs, relay.TopicOptions{}, OrderPlaced.Name()); err != nil {
		log.Fatal(err)
	}
	r, err := relay.New(drv.Outbox(), hs, relay.Options{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := r.Drain(ctx); err != nil { // a service runs r.Run(ctx) instead
		log.Fatal(err)
	}

	// --- The billing service ---
	cons, err := js.CreateOrUpdateConsumer(ctx, "ORDERS", jetstream.ConsumerConfig{Durable: "billing", FilterSubject: "order.placed"})
	if err != nil {
		log.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		log.Fatal(err)
	}
	ev, err := wjs.EventFromMsg(msg)
	if err != nil {
		log.Fatal(err)
	}
	order, err := OrderPlaced.Decode(ev)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("billing: %s %s for %s, %d cents\n", ev.Name, order.OrderID, order.CustomerID, order.TotalCents)
	fmt.Println("ordering key:", msg.Headers().Get(wjs.HeaderKey))
	fmt.Println("trace:", ev.Headers["traceparent"])
	if err := msg.Ack(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// billing: order.placed o-1001 for c-42, 4599 cents
	// ordering key: c-42
	// trace: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
}

// ExamplePublisher_Register publishes chosen topics to subjects of their
// own and leaves the rest to other handlers.
func ExamplePublisher_Register() {
	natsURL, stop := startExampleServer()
	defer stop()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	pub, err := wjs.NewPublisher(js, wjs.Options{
		Subject:    func(topic string) string { return "shop.events." + wjs.DefaultSubject(topic) },
		AckTimeout: 2 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	hs := relay.NewHandlers()
	// Retry broker outages quickly at first, and within the stream's
	// duplicate window (2 minutes by default) for as long as it lasts.
	opts := relay.TopicOptions{Backoff: relay.Backoff{Initial: 200 * time.Millisecond, Max: 30 * time.Second}}
	if err := pub.Register(hs, opts, "order.placed", "order.cancelled"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(hs.Topics())
	// Output:
	// [order.cancelled order.placed]
}

// startExampleServer runs a throwaway nats-server with JetStream in this
// process, on a free port of 127.0.0.1 with its store in a temporary
// directory.
func startExampleServer() (url string, stop func()) {
	dir, err := os.MkdirTemp("", "wharf-example-nats")
	if err != nil {
		log.Fatal(err)
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		log.Fatal("nats-server not ready")
	}
	return srv.ClientURL(), func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		_ = os.RemoveAll(dir)
	}
}
