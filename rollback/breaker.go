package rollback

import (
	"sync"
	"time"
)

// Breaker is the circuit breaker: when more than max Deployments stall
// within window, automatic rollbacks stop until the window has passed with
// no more than max stalls. Many stalls at once point at the cluster (a
// registry outage, a full node pool), not at a bad release.
type Breaker struct {
	max    int
	window time.Duration

	mu     sync.Mutex
	stalls map[string]time.Time // Deployment key -> when it was last seen stalled
}

// NewBreaker makes a closed breaker.
func NewBreaker(max int, window time.Duration) *Breaker {
	return &Breaker{max: max, window: window, stalls: map[string]time.Time{}}
}

// Record notes that key is stalled at now and reports whether the breaker
// is open, counting this stall.
func (b *Breaker) Record(key string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, seen := b.stalls[key]; !seen {
		b.stalls[key] = now
	}
	return b.openLocked(now)
}

// Open reports whether the breaker is open at now.
func (b *Breaker) Open(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.openLocked(now)
}

func (b *Breaker) openLocked(now time.Time) bool {
	for k, t := range b.stalls {
		if now.Sub(t) > b.window {
			delete(b.stalls, k)
		}
	}
	return len(b.stalls) > b.max
}
