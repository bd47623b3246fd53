package httpidempotency_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/core"
	"github.com/wharf-go/wharf/httpidempotency"
	"github.com/wharf-go/wharf/providers/sqlite"
)

// The middleware on one write route, with the handler completing the key in
// its own transaction: the order row and the stored response commit
// together. A retry replays the response (the same JSON written with other
// spacing is the same request), the key reused for another request is
// refused, and a rejected request leaves no record, so its corrected retry
// runs.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "wharf-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	drv, err := sqlite.Open(ctx, "file:"+filepath.Join(dir, "shop.db"), wharf.Options{})
	if err != nil {
		panic(err)
	}
	defer drv.Close()
	if err := drv.Migrate(ctx); err != nil {
		panic(err)
	}
	if _, err := drv.DB().ExecContext(ctx, "CREATE TABLE orders (id TEXT PRIMARY KEY, item TEXT NOT NULL)"); err != nil {
		panic(err)
	}
	uow, err := wharf.NewUnitOfWork(drv, func(tx wharf.Tx) (wharf.Tx, error) { return tx, nil }, wharf.UnitOfWorkOptions{})
	if err != nil {
		panic(err)
	}

	createOrder := func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Item string `json:"item"`
		}
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Item == "" {
			httpidempotency.WriteJSONError(w, r, &httpidempotency.Error{Status: http.StatusBadRequest, Code: "invalid_order", Message: `send {"item": "..."}`})
			return
		}
		var resp httpidempotency.Response
		err := uow.Transaction(r.Context(), func(ctx context.Context, tx wharf.Tx) error {
			id := core.NewID()
			if _, err := tx.DB.ExecContext(ctx, "INSERT INTO orders (id, item) VALUES (?, ?)", id, in.Item); err != nil {
				return err
			}
			var err error
			if resp, err = httpidempotency.JSON(http.StatusCreated, map[string]string{"item": in.Item}); err != nil {
				return err
			}
			return httpidempotency.Complete(ctx, tx.Idempotency, resp) // no-op without a key
		})
		if err != nil {
			httpidempotency.WriteJSONError(w, r, &httpidempotency.Error{Status: http.StatusInternalServerError, Code: "internal_error", Message: "retry with the same key"})
			return
		}
		_ = resp.Write(w)
	}

	idem, err := httpidempotency.New(httpidempotency.Options{Store: drv.Idempotency(), Namespace: "shop-api"})
	if err != nil {
		panic(err)
	}
	// Wrap the write routes, not the whole mux: a key sent to a route the
	// API does not serve is never reserved.
	mux := http.NewServeMux()
	mux.Handle("POST /orders", idem.Wrap(http.HandlerFunc(createOrder)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	post := func(key, body string) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/orders", strings.NewReader(body))
		if err != nil {
			panic(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(httpidempotency.HeaderKey, key)
		resp, err := srv.Client().Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		fmt.Printf("%s %d replayed=%t %s", key, resp.StatusCode, resp.Header.Get(httpidempotency.HeaderReplayed) == "true", b)
	}
	post("k-1", `{"item":"tea"}`)
	post("k-1", `{ "item": "tea" }`)
	post("k-1", `{"item":"coffee"}`)
	post("k-2", `{}`)
	post("k-2", `{"item":"cake"}`)

	var orders int
	if err := drv.DB().NewRaw("SELECT COUNT(*) FROM orders").Scan(ctx, &orders); err != nil {
		panic(err)
	}
	fmt.Println("orders:", orders)
	// Output:
	// k-1 201 replayed=false {"item":"tea"}
	// k-1 201 replayed=true {"item":"tea"}
	// k-1 422 replayed=false {"error":{"code":"idempotency_key_reused","message":"this Idempotency-Key was already used with a different request (method, path or body); use a new key for a new request"}}
	// k-2 400 replayed=false {"error":{"code":"invalid_order","message":"send {\"item\": \"...\"}"}}
	// k-2 201 replayed=false {"item":"cake"}
	// orders: 2
}
