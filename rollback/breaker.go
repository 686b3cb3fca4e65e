package rollback

import (
	"fmt"
	"sync"
	"time"
)

// Breaker is the circuit breaker, shared by every workload kind. Many stalls at once point at a problem below the
// releases (a registry outage, a full node pool, a namespace's quota), not at a bad release, and rolling everything
// back would not help. It counts only stalls it would roll back (not dry runs, not opted-out workloads, not reports),
// and it is scoped so that one tenant cannot pause rollbacks for the others:
//   - a namespace with more than max stalled workloads within window pauses rollbacks in that namespace only;
//   - the whole cluster pauses only when more than max workloads stalled within window across at least
//     minNamespaces namespaces.
type Breaker struct {
	max, minNamespaces int
	window             time.Duration

	mu     sync.Mutex
	stalls map[string]stallSeen // workload key -> its namespace and when it was first seen stalled
}

type stallSeen struct {
	namespace string
	at        time.Time
}

// NewBreaker makes a closed breaker.
func NewBreaker(max, minNamespaces int, window time.Duration) *Breaker {
	return &Breaker{max: max, minNamespaces: minNamespaces, window: window, stalls: map[string]stallSeen{}}
}

// Scope says where the breaker is open.
type Scope int

const (
	Closed Scope = iota
	// NamespaceOpen: the stalled workload's namespace has too many stalls; other namespaces roll back.
	NamespaceOpen
	// ClusterOpen: stalls across many namespaces; nothing rolls back.
	ClusterOpen
)

// Record notes that key, in namespace, is stalled at now and says where the breaker is open for it, counting this
// stall.
func (b *Breaker) Record(key, namespace string, now time.Time) Scope {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, seen := b.stalls[key]; !seen {
		b.stalls[key] = stallSeen{namespace: namespace, at: now}
	}
	return b.scopeLocked(namespace, now)
}

// Pause records a stall of the workload key that would be rolled back and reports whether the rollback must wait
// because that opens the breaker for it. stall describes the stall; why is the detail to report instead.
func (b *Breaker) Pause(key, namespace string, now time.Time, action Action, stall string, m *Metrics) (why string, paused bool) {
	if action != ActionRollback {
		return "", false
	}
	scope := b.Record(key, namespace, now)
	m.breakerOpen.Set(boolGauge(scope == ClusterOpen))
	switch scope {
	case NamespaceOpen:
		return fmt.Sprintf("%s; not rolled back: automatic rollbacks are paused in namespace %s, where more than %d workloads stalled within %s, which points at something they share (quota, registry credentials, nodes) rather than this release",
			stall, namespace, b.max, b.window), true
	case ClusterOpen:
		return fmt.Sprintf("%s; not rolled back: automatic rollbacks are paused in the cluster: more than %d workloads in %d or more namespaces stalled within %s, which points at the cluster rather than this release",
			stall, b.max, b.minNamespaces, b.window), true
	}
	return "", false
}

// Open reports whether the breaker is open for the whole cluster at now.
func (b *Breaker) Open(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.scopeLocked("", now) == ClusterOpen
}

func (b *Breaker) scopeLocked(namespace string, now time.Time) Scope {
	inNamespace := 0
	namespaces := map[string]bool{}
	for k, s := range b.stalls {
		if now.Sub(s.at) > b.window {
			delete(b.stalls, k)
			continue
		}
		namespaces[s.namespace] = true
		if s.namespace == namespace {
			inNamespace++
		}
	}
	switch {
	case len(b.stalls) > b.max && len(namespaces) >= b.minNamespaces:
		return ClusterOpen
	case inNamespace > b.max:
		return NamespaceOpen
	}
	return Closed
}
