package rollback

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the watcher's Prometheus collectors.
type Metrics struct {
	rollbacks   *prometheus.CounterVec
	stalls      *prometheus.CounterVec
	reaction    prometheus.Histogram
	breakerOpen prometheus.Gauge
	// Labelled by what platform teams write (analysis and query names), never by workload: bounded cardinality.
	analysisRuns  *prometheus.CounterVec
	analysisValue *prometheus.GaugeVec
	workloads     *workloadStates
}

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollout_guard_rollbacks_total",
			Help: "Automatic rollbacks by stall cause and result (success, dryrun, skipped, failed).",
		}, []string{"cause", "result"}),
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
	m.workloads = newWorkloadStates(maxWorkloadStates)
	for _, c := range []prometheus.Collector{m.rollbacks, m.stalls, m.reaction, m.breakerOpen, m.analysisRuns, m.analysisValue, m.workloads.gauge} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Workload states of rollout_guard_workload_state.
const (
	stateStalled    = "stalled"     // its latest revision stalled and was reported, skipped or dry-run
	stateRolledBack = "rolled_back" // the watcher rolled its latest revision back
	// maxWorkloadStates bounds the gauge's series: alerts name the workloads in trouble, and a cluster where more
	// than this many are has a problem that the circuit breaker and the totals already show.
	maxWorkloadStates = 500
)

// workloadStates is rollout_guard_workload_state{kind,namespace,name,state}: 1 for each workload whose latest
// revision is stalled or rolled back, so that an alert can name the workload and route to its team. A workload's
// series goes when a revision of it is known-good again or it is deleted.
type workloadStates struct {
	gauge *prometheus.GaugeVec
	max   int
	mu    sync.Mutex
	set   map[[3]string]string // kind, namespace, name -> state
}

func newWorkloadStates(limit int) *workloadStates {
	return &workloadStates{max: limit, set: map[[3]string]string{}, gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rollout_guard_workload_state",
		Help: "1 for each workload whose latest revision is stalled or was rolled back (at most 500 series).",
	}, []string{"kind", "namespace", "name", "state"})}
}

// Set records a workload's state; beyond the bound a new workload is not recorded.
func (w *workloadStates) Set(kind, namespace, name, state string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := [3]string{kind, namespace, name}
	old, known := w.set[key]
	if !known && len(w.set) >= w.max {
		return
	}
	if known && old != state {
		w.gauge.DeleteLabelValues(kind, namespace, name, old)
	}
	w.set[key] = state
	w.gauge.WithLabelValues(kind, namespace, name, state).Set(1)
}

// Clear removes a workload's series.
func (w *workloadStates) Clear(kind, namespace, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	key := [3]string{kind, namespace, name}
	if old, ok := w.set[key]; ok {
		w.gauge.DeleteLabelValues(kind, namespace, name, old)
		delete(w.set, key)
	}
}
