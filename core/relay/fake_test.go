package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/wharf-go/wharf/ports"
)

// memOutbox is a minimal in-memory ports.Outbox for the relay's pure-logic
// unit tests (wake-ups, option handling). It is not a reference outbox:
// storage behaviour is tested by the conformance suite on real databases.
type memOutbox struct {
	mu     sync.Mutex
	msgs   []*memMsg
	seq    int
	claims chan int // receives the size of every Claim result, if not nil
	// claimErrs are returned by the next Claim calls, one per call, in
	// order (a nil entry lets that call claim); afterwards claimErr is
	// returned by every call, if set.
	claimErrs []error
	claimErr  error
	limits    []int // the Limit of every Claim call that claimed
	calls     int   // Claim calls

	notify    chan struct{} // returned by Notifications when set
	notifyErr error         // returned by Notifications when set
}

type memMsg struct {
	m     ports.ClaimedMessage
	held  bool
	state string
}

func (o *memOutbox) add(topic string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seq++
	id := fmt.Sprintf("m-%04d", o.seq)
	o.msgs = append(o.msgs, &memMsg{m: ports.ClaimedMessage{ID: id, Kind: ports.KindJob, Topic: topic,
		Payload: json.RawMessage(`{}`), MaxAttempts: 3}})
	return id
}

func (o *memOutbox) Enqueue(context.Context, ...ports.OutboxMessage) ([]string, error) {
	panic("memOutbox: Enqueue is not used by the relay")
}

func (o *memOutbox) Claim(_ context.Context, opts ports.ClaimOptions) ([]ports.ClaimedMessage, error) {
	o.mu.Lock()
	o.calls++
	if len(o.claimErrs) > 0 {
		err := o.claimErrs[0]
		o.claimErrs = o.claimErrs[1:]
		if err != nil {
			o.mu.Unlock()
			return nil, err
		}
	} else if o.claimErr != nil {
		o.mu.Unlock()
		return nil, o.claimErr
	}
	o.limits = append(o.limits, opts.Limit)
	var out []ports.ClaimedMessage
	for _, m := range o.msgs {
		if len(out) == opts.Limit {
			break
		}
		if m.held || m.state != "" {
			continue
		}
		m.held = true
		m.m.Attempts++
		m.m.Token = fmt.Sprintf("%s/%d", m.m.ID, m.m.Attempts)
		m.m.LockedUntil = time.Now().Add(opts.Lease)
		out = append(out, m.m)
	}
	o.mu.Unlock()
	if o.claims != nil {
		select {
		case o.claims <- len(out):
		default:
		}
	}
	return out, nil
}

func (o *memOutbox) find(c ports.Claim) *memMsg {
	for _, m := range o.msgs {
		if m.m.ID == c.ID && m.held && m.m.Token == c.Token {
			return m
		}
	}
	return nil
}

func (o *memOutbox) settle(op string, claims []ports.Claim, f func(m *memMsg)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	var lost []string
	for _, c := range claims {
		if m := o.find(c); m != nil {
			f(m)
			continue
		}
		lost = append(lost, c.ID)
	}
	if lost != nil {
		return &ports.ClaimLostError{Op: op, IDs: lost}
	}
	return nil
}

func (o *memOutbox) Complete(_ context.Context, claims ...ports.Claim) error {
	return o.settle("complete", claims, func(m *memMsg) { m.held, m.state = false, "delivered" })
}

func (o *memOutbox) Retry(_ context.Context, c ports.Claim, _ ports.RetryOptions) error {
	return o.settle("retry", []ports.Claim{c}, func(m *memMsg) { m.held = false })
}

func (o *memOutbox) DeadLetter(_ context.Context, c ports.Claim, _ string) error {
	return o.settle("dead-letter", []ports.Claim{c}, func(m *memMsg) { m.held, m.state = false, "dead" })
}

func (o *memOutbox) Extend(_ context.Context, c ports.Claim, lease time.Duration) (time.Time, error) {
	until := time.Now().Add(lease)
	return until, o.settle("extend", []ports.Claim{c}, func(m *memMsg) { m.m.LockedUntil = until })
}

func (o *memOutbox) Release(_ context.Context, claims ...ports.Claim) error {
	return o.settle("release", claims, func(m *memMsg) { m.held = false; m.m.Attempts-- })
}

// claimStats returns the number of Claim calls and the limits of those that
// claimed.
func (o *memOutbox) claimStats() (calls int, limits []int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.calls, append([]int(nil), o.limits...)
}

// count returns how many messages are in state ("delivered", "dead", "held"
// or "" for pending).
func (o *memOutbox) count(state string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, m := range o.msgs {
		s := m.state
		if m.held {
			s = "held"
		}
		if s == state {
			n++
		}
	}
	return n
}

// state returns a message's state: "delivered", "dead", "held" or "".
func (o *memOutbox) state(id string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range o.msgs {
		if m.m.ID == id {
			if m.held {
				return "held"
			}
			return m.state
		}
	}
	return "missing"
}

// notifyingOutbox adds ports.OutboxNotifier to memOutbox.
type notifyingOutbox struct{ *memOutbox }

func (o notifyingOutbox) Notifications(ctx context.Context) (<-chan struct{}, error) {
	if o.notifyErr != nil && !errors.Is(o.notifyErr, ports.ErrNotificationsUnavailable) {
		return nil, o.notifyErr
	}
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case <-o.notify:
				select {
				case out <- struct{}{}:
				default:
				}
			}
		}
	}()
	return out, o.notifyErr // nil, or partly unavailable: the channel still works
}
