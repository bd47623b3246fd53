package relay

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/wharf-go/wharf/internal/check"
)

// Backoff is an exponential backoff policy with jitter and a cap. The zero
// value means the defaults: 1s initial delay, factor 2, 1h cap, 20% jitter.
type Backoff struct {
	// Initial is the delay after the first failed attempt. Default 1s.
	Initial time.Duration
	// Factor multiplies the delay for each further attempt. Default 2; must
	// be >= 1.
	Factor float64
	// Max caps the delay (before jitter is applied, and after). Default 1h.
	Max time.Duration
	// Jitter spreads each delay uniformly within ±Jitter of itself (0.2 =
	// ±20%) so that failed messages do not retry in lockstep. Default 0.2;
	// must be in [0, 1]. Use NoJitter for exact delays.
	Jitter float64
	// NoJitter disables jitter (for tests and exact schedules).
	NoJitter bool
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial == 0 {
		b.Initial = time.Second
	}
	if b.Factor == 0 {
		b.Factor = 2
	}
	if b.Max == 0 {
		b.Max = time.Hour
	}
	if b.Jitter == 0 && !b.NoJitter {
		b.Jitter = 0.2
	}
	if b.NoJitter {
		b.Jitter = 0
	}
	return b
}

// Validate reports a policy that cannot work.
func (b Backoff) Validate() error {
	b = b.withDefaults()
	switch {
	case b.Initial < 0:
		return check.Invalidf("backoff: Initial %v is negative", b.Initial)
	case b.Factor < 1 || math.IsNaN(b.Factor) || math.IsInf(b.Factor, 0):
		return check.Invalidf("backoff: Factor %v must be a finite number >= 1", b.Factor)
	case b.Max < b.Initial:
		return check.Invalidf("backoff: Max %v is below Initial %v", b.Max, b.Initial)
	case b.Jitter < 0 || b.Jitter > 1:
		return check.Invalidf("backoff: Jitter %v must be within [0, 1]", b.Jitter)
	}
	return nil
}

// Delay returns the wait after failed attempt number attempt (1 for the
// first): Initial * Factor^(attempt-1), capped at Max, with jitter. Attempts
// below 1 count as 1.
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	if attempt < 1 {
		attempt = 1
	}
	d := float64(b.Initial) * math.Pow(b.Factor, float64(attempt-1))
	if d > float64(b.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(b.Max)
	}
	if b.Jitter > 0 {
		d *= 1 + b.Jitter*(2*rand.Float64()-1)
		if d > float64(b.Max) {
			d = float64(b.Max)
		}
	}
	return time.Duration(d)
}

// String describes the policy.
func (b Backoff) String() string {
	b = b.withDefaults()
	return fmt.Sprintf("backoff(initial=%v factor=%g max=%v jitter=%g)", b.Initial, b.Factor, b.Max, b.Jitter)
}
