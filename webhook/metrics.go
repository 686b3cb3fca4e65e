package webhook

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Metrics are the webhook's Prometheus collectors.
type Metrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	mutations *prometheus.CounterVec

	violations   *prometheus.CounterVec
	exemptions   *prometheus.CounterVec
	evalFailures *prometheus.CounterVec
	evalDuration prometheus.Histogram
}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollout_guard_admission_requests_total",
			Help: "Admission requests handled, by webhook, operation and decision (allowed, patched, denied, warned, error, skipped).",
		}, []string{"webhook", "operation", "decision"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "rollout_guard_admission_duration_seconds",
			Help: "Time to answer an admission request, decode to encoded answer.",
			// Fine below 1 ms, where a healthy webhook lives; coarse up to the 3 s timeout.
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1, 0.5, 1, 3},
		}, []string{"webhook"}),
		mutations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollout_guard_mutations_total",
			Help: "Fields set by the mutating webhook, by workload kind and field.",
		}, []string{"kind", "field"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollout_guard_policy_violations_total",
			Help: "Policy violations found in admission requests, by policy and enforcement.",
		}, []string{"policy", "enforcement"}),
		exemptions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollout_guard_policy_exemptions_total",
			Help: "Policies waived in admitted requests, by policy and by what waived them: exception (a RolloutPolicyException) or annotation (rollout-guard.io/exempt, when enabled).",
		}, []string{"policy", "by"}),
		evalFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollout_guard_policy_evaluation_failures_total",
			Help: "Requests on which a policy could not be evaluated (a built-in error, its deadline) and its onError verdict stood in, by policy.",
		}, []string{"policy"}),
		evalDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rollout_guard_policy_eval_duration_seconds",
			Help:    "Time to evaluate every policy on one object.",
			Buckets: []float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25},
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.mutations, m.violations, m.exemptions, m.evalFailures, m.evalDuration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// guard runs an admission handler: it times and counts the answer, and turns
// a panic into an error answer logged with the request UID, so that no panic
// reaches the API server.
func (m *Metrics) guard(ctx context.Context, webhook string, req admission.Request, handle func(logr.Logger) admission.Response) (resp admission.Response) {
	start := time.Now()
	log := logf.FromContext(ctx).WithValues("uid", req.UID, "kind", req.Kind.Kind, "object", klog.KRef(req.Namespace, req.Name), "operation", req.Operation)
	defer func() {
		if p := recover(); p != nil {
			log.Error(fmt.Errorf("panic: %v", p), "Admission handler panicked", "webhook", webhook)
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("rollout-guard: internal error (request %s)", req.UID))
		}
		m.duration.WithLabelValues(webhook).Observe(time.Since(start).Seconds())
		m.requests.WithLabelValues(webhook, string(req.Operation), decision(resp)).Inc()
	}()
	return handle(log)
}
