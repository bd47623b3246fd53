package outboxsql_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
	_ "github.com/wharf-go/wharf/providers/sqlite" // file: URLs
)

const (
	mustArrive  = 10 * time.Second
	mustNotCome = 200 * time.Millisecond
)

// TestSettlingWakesLocalRelays checks the wake-ups of this process's
// relays (Notifications) that settling claims sends: the successor of a
// completed keyed message is claimable at once, a retried message when its
// retry is due; an unkeyed completion frees nothing.
func TestSettlingWakesLocalRelays(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (wharf.Outbox, <-chan struct{}) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		drv, err := wharf.Open(ctx, "file:"+filepath.Join(t.TempDir(), "wake.db"), wharf.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, drv.Close()) })
		require.NoError(t, drv.Migrate(ctx))
		ch, err := drv.Outbox().Notifications(ctx)
		require.NoError(t, err)
		return drv.Outbox(), ch
	}
	wake := func(t *testing.T, ch <-chan struct{}, why string) {
		t.Helper()
		select {
		case _, ok := <-ch:
			require.True(t, ok, why)
		case <-time.After(mustArrive):
			require.FailNow(t, "no wake-up within "+mustArrive.String(), why)
		}
	}
	quiet := func(t *testing.T, ch <-chan struct{}, why string) {
		t.Helper()
		select {
		case <-ch:
			require.FailNow(t, "unexpected wake-up", why)
		case <-time.After(mustNotCome):
		}
	}
	msg := func(key string) ports.OutboxMessage {
		return ports.OutboxMessage{Topic: "t", Key: key, Payload: json.RawMessage(`{}`)}
	}
	claim := func(t *testing.T, ob wharf.Outbox) []ports.ClaimedMessage {
		t.Helper()
		msgs, err := ob.Claim(context.Background(), ports.ClaimOptions{Limit: 10, Lease: time.Minute})
		require.NoError(t, err)
		return msgs
	}
	tests := []struct {
		name string
		run  func(t *testing.T, ob wharf.Outbox, ch <-chan struct{})
	}{
		{"CompletingAKeyedMessageWakes", func(t *testing.T, ob wharf.Outbox, ch <-chan struct{}) {
			_, err := ob.Enqueue(context.Background(), msg("k"), msg("k"))
			require.NoError(t, err)
			wake(t, ch, "the enqueue")
			got := claim(t, ob)
			require.Len(t, got, 1, "the second waits for the first")
			require.NoError(t, ob.Complete(context.Background(), got[0].Claim()))
			wake(t, ch, "the successor is claimable")
			require.Len(t, claim(t, ob), 1)
		}},
		{"CompletingAnUnkeyedMessageDoesNot", func(t *testing.T, ob wharf.Outbox, ch <-chan struct{}) {
			_, err := ob.Enqueue(context.Background(), msg(""))
			require.NoError(t, err)
			wake(t, ch, "the enqueue")
			got := claim(t, ob)
			require.Len(t, got, 1)
			require.NoError(t, ob.Complete(context.Background(), got[0].Claim()))
			quiet(t, ch, "nothing became claimable")
		}},
		{"ARetryWakesWhenDue", func(t *testing.T, ob wharf.Outbox, ch <-chan struct{}) {
			_, err := ob.Enqueue(context.Background(), msg(""))
			require.NoError(t, err)
			wake(t, ch, "the enqueue")
			got := claim(t, ob)
			require.Len(t, got, 1)
			at := time.Now().Add(50 * time.Millisecond)
			require.NoError(t, ob.Retry(context.Background(), got[0].Claim(), ports.RetryOptions{At: at}))
			wake(t, ch, "the retry is due")
			require.False(t, time.Now().Before(at), "not before the retry is due")
			require.Len(t, claim(t, ob), 1, "claimable once woken")
		}},
		{"ARetryFarAheadIsLeftToThePolls", func(t *testing.T, ob wharf.Outbox, ch <-chan struct{}) {
			_, err := ob.Enqueue(context.Background(), msg(""))
			require.NoError(t, err)
			wake(t, ch, "the enqueue")
			got := claim(t, ob)
			require.Len(t, got, 1)
			require.NoError(t, ob.Retry(context.Background(), got[0].Claim(), ports.RetryOptions{At: time.Now().Add(2 * time.Hour)}))
			quiet(t, ch, "no wake-up is scheduled an hour ahead")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ob, ch := setup(t)
			tt.run(t, ob, ch)
		})
	}
}
