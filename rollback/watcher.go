package rollback

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
	selector, err := labels.Parse(opts.Rollback.Selector)
	if err != nil {
		return nil, fmt.Errorf("rollback.selector: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: opts.Watcher.MetricsAddr},
		HealthProbeBindAddress:  opts.Watcher.HealthAddr,
		PprofBindAddress:        opts.Watcher.PprofAddr,
		LeaderElection:          opts.Watcher.LeaderElection,
		LeaderElectionID:        opts.Watcher.LeaderElectionID,
		LeaderElectionNamespace: opts.Namespace,
		// Stepping down at once on shutdown lets the standby take over quickly.
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:                {Transform: trimPod},
			&appsv1.ReplicaSet{}:         {Transform: trimReplicaSet},
			&appsv1.Deployment{}:         {Transform: trimDeployment, Label: selector},
			&appsv1.StatefulSet{}:        {Transform: trimStatefulSet, Label: selector},
			&appsv1.DaemonSet{}:          {Transform: trimDaemonSet, Label: selector},
			&appsv1.ControllerRevision{}: {Transform: trimControllerRevision},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	metrics, err := NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	prom, err := NewPrometheus(opts.Analysis.Prometheus)
	if err != nil {
		return nil, err
	}
	analyzer := NewAnalyzer(mgr.GetClient(), prom, opts.Analysis.Prometheus.Timeout.Duration, metrics, time.Now)
	r := NewReconciler(mgr.GetClient(), mgr.GetAPIReader(), opts.Rollback, mgr.GetEventRecorder("rollout-guard"), metrics, analyzer, time.Now)
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	for _, kind := range []string{"StatefulSet", "DaemonSet"} {
		rr, err := NewRevisionReconciler(mgr.GetClient(), mgr.GetAPIReader(), kind, opts.Rollback, r.breaker, mgr.GetEventRecorder("rollout-guard"), metrics, analyzer, time.Now)
		if err != nil {
			return nil, err
		}
		if err := rr.SetupWithManager(mgr); err != nil {
			return nil, err
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	return &Watcher{mgr: mgr}, nil
}

// Manager is the watcher's manager, for the runnables that share its leader election and clients (the audit).
func (w *Watcher) Manager() manager.Manager { return w.mgr }

// Start runs the watcher until ctx is cancelled.
func (w *Watcher) Start(ctx context.Context) error {
	return w.mgr.Start(ctx)
}
