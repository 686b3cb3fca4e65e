package audit

import (
	"cmp"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rollout-guard/rollout-guard/policies"
)

// Metrics are the audit's Prometheus collectors.
type Metrics struct {
	runs        *prometheus.CounterVec
	duration    prometheus.Gauge
	lastSuccess prometheus.Gauge
	workloads   prometheus.Gauge
	results     *resultSeries
}

// maxResultSeries bounds rollout_guard_audit_results: a cluster of many namespaces folds its smallest into "_other".
const maxResultSeries = 1000

// OtherNamespace is the namespace label of the results folded together to keep the series bounded.
const OtherNamespace = "_other"

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rollout_guard_audit_runs_total",
			Help: "Audits of the running workloads, by result (success, error).",
		}, []string{"result"}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rollout_guard_audit_duration_seconds",
			Help: "How long the last audit took, from the first List to the last report written.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rollout_guard_audit_last_success_timestamp_seconds",
			Help: "When the last audit that wrote its reports finished (Unix time).",
		}),
		workloads: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rollout_guard_audit_workloads",
			Help: "Workloads the last audit judged.",
		}),
		results: &resultSeries{desc: prometheus.NewDesc("rollout_guard_audit_results",
			"Results of the last audit by policy, namespace and result (fail, warn, error); at most 1000 series, the "+
				"namespaces with the fewest results folded into namespace=\"_other\".",
			[]string{"policy", "namespace", "result"}, nil)},
	}
	for _, c := range []prometheus.Collector{m.runs, m.duration, m.lastSuccess, m.workloads, m.results} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// SeriesKey labels one series of rollout_guard_audit_results.
type SeriesKey struct{ Policy, Namespace, Result string }

// Series counts an audit's results by policy, namespace and result, in at most limit series: when there are more,
// the namespaces with the fewest results are folded into OtherNamespace, room for which is kept.
func Series(res Result, limit int) map[SeriesKey]int {
	all := map[SeriesKey]int{}
	perNamespace := map[string]int{}
	for _, f := range res.Findings {
		for _, v := range f.Violations {
			all[SeriesKey{v.Policy, f.Namespace, verdict(v)}]++
			perNamespace[f.Namespace]++
		}
	}
	if len(all) <= limit {
		return all
	}
	// The folded series can be at most one per policy and result.
	reserve := map[SeriesKey]bool{}
	seriesOf := map[string]int{}
	for k := range all {
		reserve[SeriesKey{k.Policy, OtherNamespace, k.Result}] = true
		seriesOf[k.Namespace]++
	}
	namespaces := make([]string, 0, len(perNamespace))
	for ns := range perNamespace {
		namespaces = append(namespaces, ns)
	}
	slices.SortFunc(namespaces, func(a, b string) int { return cmp.Or(cmp.Compare(perNamespace[b], perNamespace[a]), cmp.Compare(a, b)) })
	kept, used := map[string]bool{}, len(reserve)
	for _, ns := range namespaces {
		if used+seriesOf[ns] > limit {
			break
		}
		kept[ns], used = true, used+seriesOf[ns]
	}
	out := map[SeriesKey]int{}
	for k, n := range all {
		if !kept[k.Namespace] {
			k.Namespace = OtherNamespace
		}
		out[k] += n
	}
	return out
}

func verdict(v policies.Violation) string {
	switch {
	case v.Failed:
		return resultError
	case v.Enforcement == policies.Deny:
		return resultFail
	}
	return resultWarn
}

// resultSeries serves the last audit's series whole: a scrape never sees half of one audit and half of another.
type resultSeries struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	last map[SeriesKey]int
}

func (r *resultSeries) set(s map[SeriesKey]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = s
}

func (r *resultSeries) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

func (r *resultSeries) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, n := range r.last {
		ch <- prometheus.MustNewConstMetric(r.desc, prometheus.GaugeValue, float64(n), k.Policy, k.Namespace, k.Result)
	}
}
