package rollback

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the watcher's Prometheus collectors.
type Metrics struct {
	rollbacks   *prometheus.CounterVec
	stalls      *prometheus.CounterVec
	reaction    prometheus.Histogram
	breakerOpen prometheus.Gauge
	// Labelled by what platform teams write (analysis and query names), never by workload: bounded cardinality.
	analysisRuns  *prometheus.CounterVec
	analysisValue *prometheus.GaugeVec
}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollout_guard_rollbacks_total",
			Help: "Automatic rollbacks by stall cause and result (success, dryrun, skipped, failed).",
		}, []string{"reason", "result"}),
		stalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollout_guard_stalls_detected_total",
			Help: "Stalled rollouts acted on (rolled back, skipped, dry run or reported), by cause.",
		}, []string{"cause"}),
		reaction: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rollout_guard_rollback_reaction_seconds",
			Help:    "Time from the stall signal (deadline exceeded, grace period over) to the undo patch.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30},
		}),
		breakerOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rollout_guard_circuit_breaker_open",
			Help: "1 while too many Deployments stall at once and automatic rollbacks are paused.",
		}),
		analysisRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollout_guard_analysis_runs_total",
			Help: "Samples of RolloutAnalysis queries, by analysis and result (pass, fail, inconclusive).",
		}, []string{"analysis", "result"}),
		analysisValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rollout_guard_analysis_value",
			Help: "The latest value a RolloutAnalysis query returned, across the revisions it judges.",
		}, []string{"analysis", "query"}),
	}
	for _, c := range []prometheus.Collector{m.rollbacks, m.stalls, m.reaction, m.breakerOpen, m.analysisRuns, m.analysisValue} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
