package webhook

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
	"github.com/rollout-guard/rollout-guard/webhook/certs"
)

// Paths the admission handlers are served on.
const (
	MutatePath   = "/mutate"
	ValidatePath = "/validate"
)

// Server is the `rollout-guard webhook` process: the admission server with
// its health and metrics endpoints, on a controller-runtime manager.
type Server struct {
	mgr manager.Manager
}

// NewServer builds the webhook server. Collectors are registered with reg.
func NewServer(cfg *rest.Config, opts config.Options, scheme *runtime.Scheme, reg prometheus.Registerer) (*Server, error) {
	var selfCerts *selfManagedCerts
	switch {
	case opts.Dev.Enabled:
		if err := ensureDevCerts(opts.Webhook.CertDir, opts.Webhook.Host, time.Now()); err != nil {
			return nil, err
		}
	case opts.Webhook.SelfManagedCerts.Enabled:
		// The server needs its certificates before it starts, so the first
		// sync uses a direct client, before the manager's cache exists.
		direct, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return nil, fmt.Errorf("client for self-managed certificates: %w", err)
		}
		selfCerts = &selfManagedCerts{client: direct, cfg: opts.Webhook.SelfManagedCerts, namespace: opts.Namespace, certDir: opts.Webhook.CertDir, now: time.Now}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := selfCerts.sync(ctx); err != nil {
			return nil, fmt.Errorf("self-managed certificates: %w", err)
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: opts.Webhook.MetricsAddr},
		HealthProbeBindAddress: opts.Webhook.HealthAddr,
		WebhookServer: crwebhook.NewServer(crwebhook.Options{
			Host:    opts.Webhook.Host,
			Port:    opts.Webhook.Port,
			CertDir: opts.Webhook.CertDir,
		}),
		Cache: cache.Options{
			// The webhook reads only Namespaces and RolloutPolicyExceptions from the cache; keep it small.
			ByObject: map[client.Object]cache.ByObject{&corev1.Namespace{}: {}, &v1alpha1.RolloutPolicyException{}: {}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	// GetWebhookServer is what adds the server to the manager's runnables.
	server := mgr.GetWebhookServer()
	metrics, err := NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	set, err := NewPolicySet(context.Background(), opts.Policies)
	if err != nil {
		return nil, fmt.Errorf("built-in policies: %w", err)
	}
	reloader := &policyReloader{client: mgr.GetClient(), set: set, lastGood: map[string]*v1alpha1.RolloutPolicy{}}
	if err := reloader.setup(mgr); err != nil {
		return nil, fmt.Errorf("RolloutPolicy controller: %w", err)
	}
	// Started with the cache rather than by the first request that breaks a policy, which would wait for it to sync.
	if _, err := mgr.GetCache().GetInformer(context.Background(), &v1alpha1.RolloutPolicyException{}); err != nil {
		return nil, fmt.Errorf("watch RolloutPolicyExceptions (is the chart's CRD installed?): %w", err)
	}
	exceptions := newExceptionRecorder(mgr.GetClient(), mgr.GetAPIReader())
	if err := mgr.Add(exceptions); err != nil {
		return nil, err
	}
	decoder := admission.NewDecoder(scheme)
	server.Register(MutatePath, &crwebhook.Admission{
		Handler:      NewMutator(decoder, opts, mgr.GetClient(), mgr.GetAPIReader(), metrics),
		RecoverPanic: ptr.To(true),
	})
	server.Register(ValidatePath, &crwebhook.Admission{
		Handler:      NewValidator(decoder, opts, set, mgr.GetClient(), mgr.GetAPIReader(), exceptions, metrics),
		RecoverPanic: ptr.To(true),
	})
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("webhook", server.StartedChecker()); err != nil {
		return nil, err
	}
	if selfCerts != nil {
		if err := mgr.Add(selfCerts); err != nil {
			return nil, err
		}
	}
	if opts.Dev.Enabled {
		reg := &devRegistration{client: mgr.GetClient(), opts: opts, ready: server.StartedChecker()}
		if err := mgr.Add(reg); err != nil {
			return nil, err
		}
	}
	return &Server{mgr: mgr}, nil
}

// Start serves until ctx is cancelled.
func (s *Server) Start(ctx context.Context) error {
	return s.mgr.Start(ctx)
}

// ensureDevCerts makes a self-signed CA and a serving certificate for host
// in dir, unless a valid pair is already there.
func ensureDevCerts(dir, host string, now time.Time) error {
	if host == "" {
		host = "127.0.0.1"
	}
	if b, err := certs.ReadDir(dir); err == nil && !certs.NeedsRenewal(b.Serving, 24*time.Hour, now) {
		return nil
	}
	b, err := certs.NewBundle([]string{host, "localhost"}, 30*24*time.Hour, now)
	if err != nil {
		return fmt.Errorf("dev certificates: %w", err)
	}
	if err := b.WriteDir(dir); err != nil {
		return fmt.Errorf("dev certificates in %s: %w", filepath.Clean(dir), err)
	}
	return nil
}
