package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wharf-go/wharf/core/relay"
	"github.com/wharf-go/wharf/ports"
)

// The keyed workload: Keys ordering keys × PerKey messages each, enqueued
// before the relay starts (key by key interleaved: the first message of
// every key, then the second, ...); one relay runs until every message was
// delivered, and FailPct percent of the handler calls fail (decided by a
// hash of the message ID and the attempt, so the same call always gets the
// same answer). A failed message is retried after keyedRetryDelay, and the
// messages behind it on its key wait for it: the figure is the time from
// the relay's start to the last delivery, dominated by how fast a key's
// next message is claimed once its predecessor is settled.

func init() {
	cases["keyed/wharf"] = wharfKeyed
	cases["keyed/defaults"] = wharfKeyed // the relay's default options
}

// keyedRetryDelay is the fixed retry delay of a failed keyed message.
const keyedRetryDelay = 10 * time.Millisecond

// failCall decides whether the handler call for attempt of message id
// fails: pct percent of all calls do.
func failCall(id string, attempt, pct int) bool {
	h := fnv.New32a()
	h.Write([]byte(id))
	h.Write([]byte{byte(attempt), byte(attempt >> 8)})
	return int(h.Sum32()%100) < pct
}

type keyedPayload struct {
	K int `json:"k"`
	J int `json:"j"`
}

func wharfKeyed(ctx context.Context, s Spec, r *Result) error {
	e, err := openWharf(ctx, s, 0) // the default pool: a burst of retries waits for a connection instead of opening one
	if err != nil {
		return err
	}
	defer e.Close()
	keys, per := s.Cfg.Keys, s.Cfg.PerKey
	total := keys * per
	// Enqueue (not timed): 100 messages per call on the root handle.
	var batch []ports.OutboxMessage
	for j := 0; j < per; j++ {
		for k := 0; k < keys; k++ {
			p, _ := json.Marshal(keyedPayload{K: k, J: j})
			batch = append(batch, ports.OutboxMessage{Topic: benchTopic, Key: "key-" + strconv.Itoa(k), Payload: p, MaxAttempts: 100})
			if len(batch) == 100 || (j == per-1 && k == keys-1) {
				if _, err := e.outbox.Enqueue(ctx, batch...); err != nil {
					return fmt.Errorf("enqueue: %w", err)
				}
				batch = batch[:0]
			}
		}
	}

	var (
		mu        sync.Mutex
		last      = make([]int, keys) // per key: the last delivered J, -1 before the first
		delivered int
		calls     atomic.Int64
		orderErr  error
		done      = make(chan struct{})
	)
	for i := range last {
		last[i] = -1
	}
	var fail = errors.New("bench: injected handler failure")
	hs := relay.NewHandlers()
	err = hs.Handle(benchTopic, func(ctx context.Context, m ports.ClaimedMessage) error {
		calls.Add(1)
		var p keyedPayload
		if err := json.Unmarshal(m.Payload, &p); err != nil {
			return relay.Permanent(err)
		}
		if failCall(m.ID, m.Attempts, s.Cfg.FailPct) {
			return fail
		}
		mu.Lock()
		defer mu.Unlock()
		if p.J != last[p.K]+1 && orderErr == nil {
			orderErr = fmt.Errorf("key %d: message %d delivered after message %d", p.K, p.J, last[p.K])
		}
		last[p.K] = p.J
		if delivered++; delivered == total {
			close(done)
		}
		return nil
	}, relay.TopicOptions{Backoff: relay.Backoff{Initial: keyedRetryDelay, Factor: 1, Max: keyedRetryDelay, NoJitter: true}})
	if err != nil {
		return err
	}
	n := max(1, s.Cfg.KeyedRelays)
	rls := make([]*relay.Relay, n)
	for i := range rls {
		if rls[i], err = relay.New(e.outbox, hs, relayOptions(s)); err != nil {
			return err
		}
	}
	o := relayOptions(s)
	r.Notes = append(r.Notes, fmt.Sprintf("%d keys × %d messages, %d%% of handler calls fail, backoff %v; %d relay(s) running Run, BatchSize %d, Concurrency %d, PollInterval %v",
		keys, per, s.Cfg.FailPct, keyedRetryDelay, n, o.BatchSize, o.Concurrency, o.PollInterval))
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	cpu0 := cpuStart()
	start := time.Now()
	runErr := make(chan error, 1)
	var wg sync.WaitGroup
	for _, rl := range rls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := rl.Run(rctx); err != nil && !errors.Is(err, context.Canceled) {
				select {
				case runErr <- err:
				default:
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		select {
		case runErr <- nil:
		default:
		}
	}()
	select {
	case <-done:
	case err := <-runErr:
		return fmt.Errorf("a relay stopped early: %v", err)
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		return fmt.Errorf("timed out: %d of %d delivered; left: %s", delivered, total, leftRows(e, s.Dialect))
	}
	el := time.Since(start)
	r.setCPU(cpu0, int64(total))
	stop()
	wg.Wait()
	select {
	case err := <-runErr:
		if err != nil {
			return err
		}
	default:
	}
	r.Messages, r.Seconds = int64(total), el.Seconds()
	r.MsgsPerSec = float64(total) / el.Seconds()
	r.Attempts = calls.Load()
	if orderErr != nil {
		return orderErr
	}
	left, err := countRows(ctx, e.drv.DB().DB, s.Dialect, wharfTable)
	if err != nil {
		return err
	}
	if left != 0 {
		return fmt.Errorf("%d messages left in the table", left)
	}
	return nil
}

// leftRows describes the rows left in the outbox (a diagnostic for a case
// that timed out).
func leftRows(e *wharfEnv, dialect string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := e.drv.DB().DB.QueryContext(ctx, "SELECT id, COALESCE(ordering_key, ''), status, attempts, available_at, COALESCE(locked_until, ''), payload FROM "+
		quoteIdent(dialect, wharfTable)+" ORDER BY available_at, id LIMIT 5")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, key, status, avail, locked, payload string
		var attempts int
		if err := rows.Scan(&id, &key, &status, &attempts, &avail, &locked, &payload); err != nil {
			return err.Error()
		}
		out = append(out, fmt.Sprintf("[%s key %s %s attempts %d available %s locked %s %s]", id, key, status, attempts, avail, locked, payload))
	}
	return fmt.Sprintf("%v (now %s)", out, time.Now().UTC().Format(time.RFC3339Nano))
}
