package core_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/ports"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// RunIdempotently runs a command at most once per key: a retry with the
// same key gets the stored result, the same key with another request is
// refused, and a failed run leaves the key free for a retry. (Inside a unit
// of work, pass the transaction's store, wharf.Tx.Idempotency, so that the
// record commits with the command's writes.)
func ExampleRunIdempotently() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "wharf-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	drv, err := sqlite.Open(ctx, "file:"+filepath.Join(dir, "app.db"), wharf.Options{})
	if err != nil {
		panic(err)
	}
	defer drv.Close()
	if err := drv.Migrate(ctx); err != nil {
		panic(err)
	}

	type Receipt struct {
		Charged int `json:"charged"`
	}
	charges := 0
	charge := func(key string, amount int) (Receipt, bool, error) {
		return core.RunIdempotently(ctx, drv.Idempotency(), ports.ReserveRequest{
			IdempotencyKey: ports.IdempotencyKey{Namespace: "payments.charge", Key: key},
			Fingerprint:    core.Fingerprint(fmt.Appendf(nil, "%d", amount)),
		}, func(ctx context.Context) (Receipt, error) {
			if amount <= 0 {
				return Receipt{}, errors.New("amount must be positive")
			}
			charges++
			return Receipt{Charged: amount}, nil
		})
	}

	r, replayed, err := charge("order-1", 42)
	fmt.Println(r.Charged, replayed, err)
	r, replayed, err = charge("order-1", 42) // a retry: the stored result
	fmt.Println(r.Charged, replayed, err)
	_, _, err = charge("order-1", 99) // the same key for another request
	fmt.Println(errors.Is(err, ports.ErrIdempotencyMismatch))
	_, _, err = charge("order-2", 0) // fails: nothing is stored
	fmt.Println(err)
	r, replayed, err = charge("order-2", 7) // so a corrected retry runs
	fmt.Println(r.Charged, replayed, err)
	fmt.Println("charges:", charges)
	// Output:
	// 42 false <nil>
	// 42 true <nil>
	// true
	// amount must be positive
	// 7 false <nil>
	// charges: 2
}

// A typed event: the definition names the topic and the payload type, so
// use cases and handlers never touch JSON.
func ExampleDefineEvent() {
	type TodoCreated struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	created := core.DefineEvent[TodoCreated]("todo.created")

	ev, err := created.New(TodoCreated{ID: "t-1", Title: "buy milk"})
	if err != nil {
		panic(err)
	}
	fmt.Println(ev.Name, string(ev.Payload))

	payload, err := created.Decode(ev)
	fmt.Println(payload.Title, err)

	_, err = core.DefineEvent[TodoCreated]("").New(TodoCreated{})
	fmt.Println(errors.Is(err, ports.ErrInvalidArgument))
	// Output:
	// todo.created {"id":"t-1","title":"buy milk"}
	// buy milk <nil>
	// true
}

// Fingerprint hashes the parts of a request; the parts are
// length-prefixed, so moving a byte from one part to the next changes it.
func ExampleFingerprint() {
	a := core.Fingerprint([]byte("POST"), []byte("/orders"), []byte(`{"item":"tea"}`))
	b := core.Fingerprint([]byte("POST"), []byte("/orders"), []byte(`{"item":"tea"}`))
	c := core.Fingerprint([]byte("POST"), []byte("/order"), []byte(`s{"item":"tea"}`))
	fmt.Println(len(a), a == b, a == c)
	// Output:
	// 64 true false
}
