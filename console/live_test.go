package console_test

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wharf-go/wharf/console"
	"github.com/wharf-go/wharf/console/internal/consoletest"
	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// clock is a settable clock.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 3, 1, 12, 0, 30, 0, time.UTC).UnixNano())
	return c
}
func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) minute() time.Time   { return c.now().Truncate(time.Minute) }

// countingOutbox counts the Stats calls of an outbox and can fail them.
type countingOutbox struct {
	ports.OutboxAdmin
	calls atomic.Int64
	fail  atomic.Bool
}

func (o *countingOutbox) Stats(ctx context.Context) (ports.OutboxStats, error) {
	o.calls.Add(1)
	if o.fail.Load() {
		return ports.OutboxStats{}, errors.New("connection refused")
	}
	return o.OutboxAdmin.Stats(ctx)
}

// TestCountsAreSharedByEveryViewer refreshes the overview from many
// goroutines at once: the table is counted once per interval, not once per
// request; a failed count keeps the last counts on the page.
func TestCountsAreSharedByEveryViewer(t *testing.T) {
	t.Parallel()
	db := consoletest.Open(t, "sqlite")
	consoletest.Seed(t, db, 3, 1)
	ob := &countingOutbox{OutboxAdmin: db.Driver.Outbox()}
	clk := newClock()
	s := newServer(t, console.Options{Outbox: ob, StatsInterval: time.Minute, Now: clk.now})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			res, err := s.client.Get(s.srv.URL + prefix + "/live")
			if err == nil {
				_ = res.Body.Close()
				require.Equal(t, http.StatusOK, res.StatusCode)
			}
			require.NoError(t, err)
		})
	}
	wg.Wait()
	require.Equal(t, int64(1), ob.calls.Load(), "20 refreshes, one count")
	clk.add(59 * time.Second)
	s.get("/", http.StatusOK)
	require.Equal(t, int64(1), ob.calls.Load(), "within the interval")
	clk.add(2 * time.Second)
	want := counts(t, s.get("/", http.StatusOK).body)
	require.Equal(t, int64(2), ob.calls.Load(), "after the interval")
	require.Equal(t, int64(3), want["ready"])

	ob.fail.Store(true)
	clk.add(2 * time.Minute)
	res := s.get("/", http.StatusOK)
	require.Equal(t, int64(3), ob.calls.Load())
	require.Contains(t, res.body, "The last count failed: connection refused")
	require.Equal(t, want, counts(t, res.body), "the last good counts stay")
}

var totalRE = regexp.MustCompile(`data-total="([a-z-]+)">([\d,]+)<`)

func totals(t *testing.T, body string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, m := range totalRE.FindAllStringSubmatch(body, -1) {
		n, err := strconv.ParseInt(regexp.MustCompile(",").ReplaceAllString(m[2], ""), 10, 64)
		require.NoError(t, err)
		out[m[1]] = n
	}
	return out
}

// TestMeterChartsWhatRelaysDelivered runs a real relay with a Meter as its
// Observer and checks the overview's chart shows what it delivered and
// failed.
func TestMeterChartsWhatRelaysDelivered(t *testing.T) {
	t.Parallel()
	db := consoletest.Open(t, "sqlite")
	ctx := context.Background()
	ob := db.Driver.Outbox()
	var msgs []ports.OutboxMessage
	for i := range 12 {
		topic := "ok"
		if i%4 == 0 {
			topic = "fails"
		}
		msgs = append(msgs, ports.OutboxMessage{Topic: topic, Payload: []byte(`{}`), MaxAttempts: 1})
	}
	_, err := ob.Enqueue(ctx, msgs...)
	require.NoError(t, err)
	meter := console.NewMeter(nil)
	hs := relay.NewHandlers()
	require.NoError(t, hs.Handle("ok", func(context.Context, ports.ClaimedMessage) error { return nil }, relay.TopicOptions{}))
	require.NoError(t, hs.Handle("fails", func(context.Context, ports.ClaimedMessage) error { return errors.New("boom") }, relay.TopicOptions{}))
	r, err := relay.New(ob, hs, relay.Options{Observer: meter.Observe})
	require.NoError(t, err)
	res, err := r.Drain(ctx)
	require.NoError(t, err)
	require.Equal(t, 12, res.Delivered+res.DeadLettered, "every message handled: %+v", res)

	s := newServer(t, console.Options{Outbox: ob, Meter: meter})
	body := s.get("/", http.StatusOK).body
	require.Contains(t, body, "Delivered and failed per minute")
	require.Equal(t, map[string]int64{"delivered": 9, "failed": 3}, totals(t, body))
	require.Contains(t, body, "9 delivered, 3 failed (0 retried, 3 dead-lettered)", "the current minute's bar says it")
}

// TestMeterKeepsAnHour feeds a Meter on a settable clock from many
// goroutines and checks its minutes, and that a minute an hour old is
// forgotten.
func TestMeterKeepsAnHour(t *testing.T) {
	t.Parallel()
	clk := newClock()
	m := console.NewMeter(clk.now)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				m.Observe(context.Background(), relay.Observation{Outcome: relay.OutcomeDelivered})
				m.Observe(context.Background(), relay.Observation{Outcome: relay.OutcomeReleased}) // not counted
			}
			m.Observe(context.Background(), relay.Observation{Outcome: relay.OutcomeRetried})
			m.Observe(context.Background(), relay.Observation{Outcome: relay.OutcomeDead})
		})
	}
	wg.Wait()
	h := m.LastHour()
	require.Len(t, h, 60)
	last := h[59]
	require.Equal(t, clk.minute(), last.Start)
	require.Equal(t, console.MinuteCounts{Start: last.Start, Delivered: 800, Retried: 8, Dead: 8}, last)
	require.Equal(t, int64(16), last.Failed())

	clk.add(time.Minute)
	m.Observe(context.Background(), relay.Observation{Outcome: relay.OutcomeDelivered})
	h = m.LastHour()
	require.Equal(t, int64(800), h[58].Delivered, "the previous minute")
	require.Equal(t, int64(1), h[59].Delivered)

	clk.add(time.Hour)
	m.Observe(context.Background(), relay.Observation{Outcome: relay.OutcomeDead})
	h = m.LastHour()
	var sum int64
	for _, x := range h {
		sum += x.Delivered + x.Failed()
	}
	require.Equal(t, int64(1), sum, "what is older than an hour is gone, though its slot is reused")
	var nilMeter *console.Meter
	nilMeter.Observe(context.Background(), relay.Observation{Outcome: relay.OutcomeDelivered})
	require.Nil(t, nilMeter.LastHour())
}

// TestSampledChartCountsNewDeadLetters charts, without a Meter, the dead
// letters added between counts; dead letters the console itself requeued
// or purged are not read as fewer failures.
func TestSampledChartCountsNewDeadLetters(t *testing.T) {
	t.Parallel()
	db := consoletest.Open(t, "sqlite")
	drv := db.Driver
	seed := consoletest.Seed(t, db, 1, 2)
	clk := newClock()
	s := newServer(t, console.Options{Outbox: drv.Outbox(), StatsInterval: time.Second, Now: clk.now})
	body := s.get("/", http.StatusOK).body
	require.Equal(t, map[string]int64{"dead-lettered": 0}, totals(t, body), "the first count is the baseline")

	deadLetter(t, drv, "late.a", "")
	deadLetter(t, drv, "late.b", "")
	clk.add(time.Minute)
	require.Equal(t, map[string]int64{"dead-lettered": 2}, totals(t, s.get("/", http.StatusOK).body))

	token := s.csrf(s.get("/dead", http.StatusOK))
	res := s.post("/dead/requeue", map[string][]string{"csrf": {token}, "only": {seed.Dead[0]}})
	require.Equal(t, http.StatusSeeOther, res.status)
	deadLetter(t, drv, "late.c", "")
	clk.add(time.Minute)
	body = s.get("/", http.StatusOK).body
	require.Equal(t, map[string]int64{"dead-lettered": 3}, totals(t, body), "one requeued by the console, one new: one more failure")
	require.Contains(t, body, "sampled from the counts in 3 of the last 60 minutes")

	clk.add(2 * time.Hour)
	require.Equal(t, map[string]int64{"dead-lettered": 0}, totals(t, s.get("/", http.StatusOK).body), "an hour later")
}
