package webhook

import (
	"context"
	"fmt"
	"io"
	"net/http"
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
	status := statusWriters{
		exceptions: newExceptionRecorder(mgr.GetClient(), mgr.GetAPIReader()),
		failures:   newFailureRecorder(mgr.GetClient(), mgr.GetAPIReader()),
	}
	if err := mgr.Add(status.exceptions); err != nil {
		return nil, err
	}
	if err := mgr.Add(status.failures); err != nil {
		return nil, err
	}
	decoder := admission.NewDecoder(scheme)
	server.Register(MutatePath, bounded(&crwebhook.Admission{
		Handler:      NewMutator(decoder, opts, mgr.GetClient(), mgr.GetAPIReader(), metrics),
		RecoverPanic: ptr.To(true),
	}, maxBodyBytes, bodyReadTimeout))
	server.Register(ValidatePath, bounded(&crwebhook.Admission{
		Handler:      NewValidator(decoder, opts, set, mgr.GetClient(), mgr.GetAPIReader(), status, metrics),
		RecoverPanic: ptr.To(true),
	}, maxBodyBytes, bodyReadTimeout))
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

// Bounds of one admission request's body. An AdmissionReview carries the object and, on UPDATE, the old one: etcd
// keeps objects below 1.5 MiB, so 4 MiB is room for both and the envelope. The body is read within bodyReadTimeout,
// well beyond any API server's webhook timeout (30 s at most) for a real request; controller-runtime's server bounds
// the headers (32 s) and keeps idle connections 90 s.
const (
	maxBodyBytes    = 4 << 20
	bodyReadTimeout = 10 * time.Second
)

// bounded makes a request's body readable only within a deadline and up to a size: a client that trickles a body
// byte by byte, or sends gigabytes, holds neither a connection nor memory for long.
func bounded(h http.Handler, maxBytes int64, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(timeout))
		r.Body = closeOnError{ReadCloser: http.MaxBytesReader(w, r.Body, maxBytes), header: w.Header()}
		h.ServeHTTP(w, r)
	})
}

// closeOnError ends the connection after the answer when the body could not be read: what is left of it is not a
// next request to wait for.
type closeOnError struct {
	io.ReadCloser
	header http.Header
}

func (c closeOnError) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		c.header.Set("Connection", "close")
	}
	return n, err
}
