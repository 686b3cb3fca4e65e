package rollback

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/rollout-guard/rollout-guard/config"
)

// Watcher is the `rollout-guard watcher` process.
type Watcher struct {
	mgr manager.Manager
}

// NewWatcher builds the watcher's manager and controller.
func NewWatcher(cfg *rest.Config, opts config.Options, scheme *runtime.Scheme, reg prometheus.Registerer) (*Watcher, error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: opts.Watcher.MetricsAddr},
		HealthProbeBindAddress:  opts.Watcher.HealthAddr,
		LeaderElection:          opts.Watcher.LeaderElection,
		LeaderElectionID:        opts.Watcher.LeaderElectionID,
		LeaderElectionNamespace: opts.Namespace,
		// Stepping down at once on shutdown lets the standby take over quickly.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	return &Watcher{mgr: mgr}, nil
}

// Start runs the watcher until ctx is cancelled.
func (w *Watcher) Start(ctx context.Context) error {
	return w.mgr.Start(ctx)
}
