package rollback

import (
	"fmt"
	"sync"
	"time"
)

// Breaker is the circuit breaker, shared by every workload kind: when more
// than max workloads stall
// within window, automatic rollbacks stop until the window has passed with
// no more than max stalls. Many stalls at once point at the cluster (a
// registry outage, a full node pool), not at a bad release.
type Breaker struct {
	max    int
	window time.Duration

	mu     sync.Mutex
	stalls map[string]time.Time // workload key -> when it was last seen stalled
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

// Pause records a stall of the workload key that would be rolled back (or,
// in dry run, would have been) and reports whether the rollback must wait
// because that opens the breaker. why is the detail to report instead.
func (b *Breaker) Pause(key string, now time.Time, action Action, detail string, m *Metrics) (why string, paused bool) {
	if action != ActionRollback && action != ActionDryRun {
		return "", false
	}
	open := b.Record(key, now)
	m.breakerOpen.Set(boolGauge(open))
	if !open || action != ActionRollback {
		return "", false
	}
	return fmt.Sprintf("%s; automatic rollbacks are paused: more than %d workloads stalled within %s, which points at the cluster rather than this release", detail, b.max, b.window), true
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
