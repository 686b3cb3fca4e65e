package webhook

import (
	"context"
	"fmt"
	"sync"
	"time"

	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// batcher gathers what admission requests report, by key, and writes it every period: no request waits on the API
// server, and a burst of requests is one write per key.
type batcher[K comparable, V any] struct {
	// failed is the log message when a write fails.
	failed string
	write  func(ctx context.Context, key K, v *V) error

	mu      sync.Mutex
	pending map[K]*V
}

func newBatcher[K comparable, V any](failed string, write func(context.Context, K, *V) error) *batcher[K, V] {
	return &batcher[K, V]{failed: failed, write: write, pending: map[K]*V{}}
}

// batchPeriod is how often a batcher writes: soon enough for a person watching a status, seldom enough that a burst
// of applies is one write.
const batchPeriod = 2 * time.Second

// add changes the pending value of key with update.
func (b *batcher[K, V]) add(key K, update func(*V)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := b.pending[key]
	if v == nil {
		v = new(V)
		b.pending[key] = v
	}
	update(v)
}

// NeedLeaderElection: every replica writes what it saw.
func (b *batcher[K, V]) NeedLeaderElection() bool { return false }

// Start writes what is pending every period until ctx ends, then once more.
func (b *batcher[K, V]) Start(ctx context.Context) error {
	t := time.NewTicker(batchPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			last, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			b.flush(last)
			cancel()
			return nil
		case <-t.C:
			b.flush(ctx)
		}
	}
}

func (b *batcher[K, V]) flush(ctx context.Context) {
	b.mu.Lock()
	batch := b.pending
	b.pending = map[K]*V{}
	b.mu.Unlock()
	for key, v := range batch {
		if err := b.write(ctx, key, v); err != nil {
			logf.FromContext(ctx).Error(err, b.failed, "key", fmt.Sprint(key))
		}
	}
}
