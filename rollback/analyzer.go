package rollback

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rollout-guard/rollout-guard/analysis"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// AnnotationAnalysis on a workload names the RolloutAnalyses that judge its new revisions: "a" or "a,b".
const AnnotationAnalysis = "rollout-guard.io/analysis"

// ReasonAnalysisInconclusive: an analysis of a new revision cannot judge it (Prometheus unreachable, no data, too
// little traffic); the revision is neither rolled back nor marked known-good while it lasts.
const ReasonAnalysisInconclusive = "RolloutGuardAnalysisInconclusive"

const (
	// prometheusBackoff is how long no workload asks a Prometheus that did not answer: an outage costs one
	// timeout per backoff, not one per workload, each holding a reconcile worker.
	prometheusBackoff = 30 * time.Second
	// listTimeout bounds reading RolloutAnalyses: the cache would wait forever for a first sync RBAC forbids.
	listTimeout = 10 * time.Second
	// stateTTL: the state of a revision no reconcile asked about for this long (marked, rolled back, deleted) goes.
	stateTTL = 30 * time.Minute
)

// Revision is what the analyzer needs of a workload's new revision.
type Revision struct {
	// Kind of the workload; Hash tells its revisions apart (pod-template-hash, or the ControllerRevision's name).
	Kind, Hash, Number string
	// Pods and StablePods are regexes of the revision's and the stable revision's pods (analysis.RevisionPods,
	// analysis.PodsOf); StablePods is "" when no revision is known-good.
	Pods, StablePods string
	// Complete: the rollout to this revision is complete (the bake time runs from then).
	Complete bool
}

// Querier runs one instant PromQL query; promv1.API is one.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...promv1.Option) (model.Value, promv1.Warnings, error)
}

// Analyzer runs the RolloutAnalyses that apply to new revisions and keeps their state between samples, in the
// leading watcher's memory: a restart starts an analysis again, which can delay a verdict, never cause one.
type Analyzer struct {
	reader  client.Reader
	prom    Querier // nil: no Prometheus configured
	timeout time.Duration
	metrics *Metrics
	now     func() time.Time

	mu        sync.Mutex
	states    map[string]*revisionState
	prepared  map[string]preparedAnalysis // by name
	downUntil time.Time
	downWhy   string
	pruned    time.Time
}

type revisionState struct {
	analysis.State
	used time.Time
	// inconclusive: the last verdict was inconclusive, so the Event for it was already made.
	inconclusive bool
}

type preparedAnalysis struct {
	resourceVersion string
	a               *analysis.Analysis
	invalid         string
	namespace       labels.Selector // nil: the analysis selects no workload by itself
	workload        labels.Selector
	kinds           []string
}

// NewAnalyzer builds an analyzer reading RolloutAnalyses and Namespaces through reader and querying prom (nil when
// no Prometheus is configured).
func NewAnalyzer(reader client.Reader, prom Querier, timeout time.Duration, metrics *Metrics, now func() time.Time) *Analyzer {
	return &Analyzer{reader: reader, prom: prom, timeout: timeout, metrics: metrics, now: now,
		states: map[string]*revisionState{}, prepared: map[string]preparedAnalysis{}}
}

// Analyse returns the verdict of the analyses that apply to workload w's new revision rev, sampling each query
// that is due; nil when none applies. notice is set once when the verdict becomes inconclusive, for an Event.
func (a *Analyzer) Analyse(ctx context.Context, w client.Object, rev Revision) (status *analysis.Status, notice string) {
	applied, hold := a.applicable(ctx, w, rev.Kind)
	if len(applied) == 0 && hold == "" {
		return nil, ""
	}
	if hold != "" {
		// Asked for by name and not to be had: never known-good unjudged. The detail says why.
		return &analysis.Status{Verdict: analysis.Running, Detail: hold, Inconclusive: hold, Next: prometheusBackoff}, a.noticeOnce(w, rev, hold)
	}
	target := analysis.Target{Namespace: w.GetNamespace(), Name: w.GetName(), Kind: rev.Kind, Revision: rev.Number, Pods: rev.Pods, StablePods: rev.StablePods}
	statuses := make([]analysis.Status, 0, len(applied))
	for _, an := range applied {
		statuses = append(statuses, a.run(ctx, an, stateKey(w, rev, an.Name), target, rev.Complete))
	}
	combined := analysis.Combine(statuses...)
	return &combined, a.noticeOnce(w, rev, combined.Inconclusive)
}

// run brings one analysis of one revision up to date: it samples its queries when due (outside the lock: a slow
// Prometheus must not hold up other workloads) and returns its verdict.
func (a *Analyzer) run(ctx context.Context, an *analysis.Analysis, key string, target analysis.Target, complete bool) analysis.Status {
	now := a.now()
	a.mu.Lock()
	st := a.state(key, now)
	an.Observe(&st.State, complete, now)
	due := an.Due(&st.State, now)
	a.mu.Unlock()
	if due {
		results := make([]analysis.Result, 0, len(an.Queries))
		for _, q := range an.Queries {
			r := q.Judge(a.observe(ctx, q, target), now)
			results = append(results, r)
			a.metrics.analysisRuns.WithLabelValues(an.Name, string(r.Verdict)).Inc()
			if r.Verdict != analysis.Inconclusive {
				a.metrics.analysisValue.WithLabelValues(an.Name, r.Query).Set(r.Value)
			}
		}
		a.mu.Lock()
		an.Record(&st.State, results, now)
		a.mu.Unlock()
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return an.Verdict(&st.State, now)
}

// state returns the state of key, made when missing; the caller holds the lock. States nobody asked about for a
// while are dropped here, at most once a minute.
func (a *Analyzer) state(key string, now time.Time) *revisionState {
	if now.Sub(a.pruned) > time.Minute {
		for k, st := range a.states {
			if now.Sub(st.used) > stateTTL {
				delete(a.states, k)
			}
		}
		a.pruned = now
	}
	st := a.states[key]
	if st == nil {
		st = &revisionState{}
		a.states[key] = st
	}
	st.used = now
	return st
}

// noticeOnce returns why the revision's analysis is inconclusive when it has just become so, "" otherwise: the
// reasons carry changing values, so an Event at every sample would only be noise.
func (a *Analyzer) noticeOnce(w client.Object, rev Revision, inconclusive string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.state(stateKey(w, rev, ""), a.now())
	was := st.inconclusive
	st.inconclusive = inconclusive != ""
	if was || inconclusive == "" {
		return ""
	}
	return inconclusive
}

func stateKey(w client.Object, rev Revision, analysisName string) string {
	return strings.Join([]string{rev.Kind, w.GetNamespace(), w.GetName(), rev.Hash, analysisName}, "/")
}

// observe runs a query, its traffic query and its stable counterpart, as the query has them.
func (a *Analyzer) observe(ctx context.Context, q analysis.Query, target analysis.Target) analysis.Observation {
	query, traffic, stable, err := q.Render(target)
	if err != nil {
		return analysis.Observation{Value: analysis.Value{Missing: err.Error()}}
	}
	o := analysis.Observation{Value: a.query(ctx, query)}
	if o.Value.Missing != "" {
		return o
	}
	if traffic != "" {
		v := a.query(ctx, traffic)
		o.Traffic = &v
	}
	if stable != "" {
		v := a.query(ctx, stable)
		o.Stable = &v
	}
	return o
}

// query runs one PromQL query for one number. While Prometheus is known to be down it is not asked.
func (a *Analyzer) query(ctx context.Context, q string) analysis.Value {
	if a.prom == nil {
		return analysis.Value{Missing: "no Prometheus is configured (analysis.prometheus.address)"}
	}
	a.mu.Lock()
	down, why := a.now().Before(a.downUntil), a.downWhy
	a.mu.Unlock()
	if down {
		return analysis.Value{Missing: why}
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	v, _, err := a.prom.Query(ctx, q, time.Time{}, promv1.WithTimeout(a.timeout))
	if err != nil {
		msg := "Prometheus: " + err.Error()
		if unreachable(err) {
			a.mu.Lock()
			a.downUntil, a.downWhy = a.now().Add(prometheusBackoff), msg
			a.mu.Unlock()
		}
		return analysis.Value{Missing: msg}
	}
	return valueOf(v)
}

// unreachable: Prometheus did not answer, or failed as a server; a bad query is answered and is not an outage.
func unreachable(err error) bool {
	var apiErr *promv1.Error
	if errors.As(err, &apiErr) {
		return apiErr.Type == promv1.ErrServer || apiErr.Type == promv1.ErrTimeout
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded)
}

// valueOf reads the one number an analysis query must return.
func valueOf(v model.Value) analysis.Value {
	switch v := v.(type) {
	case *model.Scalar:
		return analysis.Number(float64(v.Value))
	case model.Vector:
		switch len(v) {
		case 0:
			return analysis.Value{Missing: "no data"}
		case 1:
			return analysis.Number(float64(v[0].Value))
		}
		return analysis.Value{Missing: fmt.Sprintf("%d series; a query must return one (aggregate it, e.g. with sum())", len(v))}
	}
	return analysis.Value{Missing: fmt.Sprintf("a %s result; a query must return one series or a scalar", v.Type())}
}

// applicable returns the prepared analyses that apply to w: those its annotation names and those whose selector
// matches it. hold says why w cannot be analysed (an analysis it names is missing or invalid, RolloutAnalyses
// cannot be read); a listing error holds back only workloads that ask for an analysis by name.
func (a *Analyzer) applicable(ctx context.Context, w client.Object, kind string) (out []*analysis.Analysis, hold string) {
	var named []string
	for n := range strings.SplitSeq(w.GetAnnotations()[AnnotationAnalysis], ",") {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(named, n) {
			named = append(named, n)
		}
	}
	lctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	var list v1alpha1.RolloutAnalysisList
	if err := a.reader.List(lctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		if len(named) > 0 {
			return nil, fmt.Sprintf("cannot read RolloutAnalyses (%v), so analysis %s cannot run", err, strings.Join(named, ","))
		}
		return nil, ""
	}
	var problems []string
	found := map[string]bool{}
	var nsLabels labels.Set
	for i := range list.Items {
		ra := &list.Items[i]
		p := a.prepare(ra)
		wanted := slices.Contains(named, ra.Name)
		found[ra.Name] = wanted
		if !wanted && p.namespace != nil && (len(p.kinds) == 0 || slices.Contains(p.kinds, kind)) && p.workload.Matches(labels.Set(w.GetLabels())) {
			if nsLabels == nil {
				nsLabels = a.namespaceLabels(lctx, w.GetNamespace())
			}
			wanted = p.namespace.Matches(nsLabels)
		}
		switch {
		case !wanted:
		case p.invalid != "":
			problems = append(problems, fmt.Sprintf("RolloutAnalysis %s is invalid: %s", ra.Name, p.invalid))
		default:
			out = append(out, p.a)
		}
	}
	for _, n := range named {
		if !found[n] {
			problems = append(problems, fmt.Sprintf("RolloutAnalysis %s named in %s does not exist", n, AnnotationAnalysis))
		}
	}
	return out, strings.Join(problems, "; ")
}

// prepare returns the analysis prepared, once per version of it.
func (a *Analyzer) prepare(ra *v1alpha1.RolloutAnalysis) preparedAnalysis {
	a.mu.Lock()
	defer a.mu.Unlock()
	if p, ok := a.prepared[ra.Name]; ok && p.resourceVersion == ra.ResourceVersion {
		return p
	}
	p := preparedAnalysis{resourceVersion: ra.ResourceVersion}
	an, errs := ra.ToAnalysis()
	if len(errs) > 0 {
		p.invalid = errs.ToAggregate().Error()
	} else {
		p.a = an
		p.namespace, p.workload, p.kinds, _ = ra.Selects() // ToAnalysis checked the selectors
	}
	a.prepared[ra.Name] = p
	return p
}

// namespaceLabels are the labels of namespace ns; none when it cannot be read.
func (a *Analyzer) namespaceLabels(ctx context.Context, ns string) labels.Set {
	var n corev1.Namespace
	if err := a.reader.Get(ctx, client.ObjectKey{Name: ns}, &n); err != nil {
		return labels.Set{}
	}
	return labels.Set(n.Labels)
}
