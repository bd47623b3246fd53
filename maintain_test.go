package wharf_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf"
	"github.com/wharf-go/wharf/ports"
)

// manualClock is a clock the test moves.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// maintained is a migrated SQLite driver on a manual clock holding one
// dead letter and one idempotency record, both an hour old and expired.
func maintained(t *testing.T) (*wharf.Driver, *manualClock) {
	t.Helper()
	ctx := t.Context()
	c := &manualClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	drv, err := wharf.Open(ctx, fileURL(t), wharf.Options{Now: c.Now})
	require.NoError(t, err)
	t.Cleanup(func() { _ = drv.Close() })
	require.NoError(t, drv.Migrate(ctx))
	ob := drv.Outbox()
	_, err = ob.Enqueue(ctx, ports.OutboxMessage{Topic: "t", Payload: json.RawMessage(`{}`), MaxAttempts: 1})
	require.NoError(t, err)
	msgs, err := ob.Claim(ctx, ports.ClaimOptions{Limit: 1, Lease: time.Minute})
	require.NoError(t, err)
	require.NoError(t, ob.DeadLetter(ctx, msgs[0].Claim(), "boom"))
	_, err = drv.Idempotency().Reserve(ctx, ports.ReserveRequest{IdempotencyKey: ports.IdempotencyKey{Namespace: "n", Key: "k"},
		Fingerprint: "f", TTL: time.Minute})
	require.NoError(t, err)
	c.Advance(time.Hour)
	return drv, c
}

func TestNewMaintainerRefusesBadOptions(t *testing.T) {
	t.Parallel()
	drv, _ := maintained(t)
	for _, tc := range []struct {
		name string
		drv  *wharf.Driver
		opts wharf.MaintainerOptions
		want string
	}{
		{"NilDriver", nil, wharf.MaintainerOptions{}, "nil driver"},
		{"NegativeInterval", drv, wharf.MaintainerOptions{Interval: -time.Second}, "Interval -1s"},
		{"NegativeBatchSize", drv, wharf.MaintainerOptions{BatchSize: -1}, "BatchSize -1"},
		{"NegativeRetention", drv, wharf.MaintainerOptions{DeadLetterRetention: -time.Hour}, "DeadLetterRetention"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := wharf.NewMaintainer(tc.drv, tc.opts)
			require.Nil(t, m)
			require.ErrorIs(t, err, ports.ErrInvalidArgument)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestMaintainerOptionsChooseWhatIsPurged: by default expired idempotency
// records go and dead letters stay; a grace period keeps records longer; a
// negative grace keeps them; a retention purges dead letters.
func TestMaintainerOptionsChooseWhatIsPurged(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		opts            wharf.MaintainerOptions
		idem, deadLetts int64
	}{
		{"Defaults", wharf.MaintainerOptions{}, 1, 0},
		{"GraceNotYetOver", wharf.MaintainerOptions{IdempotencyGrace: 2 * time.Hour}, 0, 0},
		{"GraceOver", wharf.MaintainerOptions{IdempotencyGrace: 30 * time.Minute}, 1, 0},
		{"NegativeGraceKeepsRecords", wharf.MaintainerOptions{IdempotencyGrace: -1}, 0, 0},
		{"RetentionOver", wharf.MaintainerOptions{DeadLetterRetention: 30 * time.Minute}, 1, 1},
		{"RetentionNotYetOver", wharf.MaintainerOptions{DeadLetterRetention: 2 * time.Hour}, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			drv, c := maintained(t)
			m, err := wharf.NewMaintainer(drv, tc.opts)
			require.NoError(t, err)
			r, err := m.RunOnce(ctx)
			require.NoError(t, err)
			require.Equal(t, c.Now(), r.Started, "the round runs on the driver's clock")
			require.Equal(t, tc.idem, r.IdempotencyPurged)
			require.Equal(t, tc.deadLetts, r.DeadLettersPurged)
			ist, err := drv.Idempotency().Stats(ctx)
			require.NoError(t, err)
			require.Equal(t, 1-tc.idem, ist.Total())
			ost, err := drv.Outbox().Stats(ctx)
			require.NoError(t, err)
			require.Equal(t, 1-tc.deadLetts, ost.Dead)
		})
	}
}

func TestMaintainerRunRoundsUntilCancelled(t *testing.T) {
	t.Parallel()
	drv, _ := maintained(t)
	rounds := make(chan wharf.MaintenanceRound, 100)
	m, err := wharf.NewMaintainer(drv, wharf.MaintainerOptions{Interval: 10 * time.Millisecond, OnRound: func(r wharf.MaintenanceRound) { rounds <- r }})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	first := <-rounds
	require.NoError(t, first.Err)
	require.EqualValues(t, 1, first.IdempotencyPurged, "the first round runs at once")
	second := <-rounds
	require.Zero(t, second.IdempotencyPurged, "then rounds find nothing left")
	require.ErrorContains(t, m.Run(ctx), "already running")
	cancel()
	require.NoError(t, <-done, "a cancelled Run returns nil")
}
