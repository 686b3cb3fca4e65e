package rollback

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/rollout-guard/rollout-guard/analysis"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// fakeProm answers queries by the pods they select: new or stable, with values set by the test.
type fakeProm struct {
	mu          sync.Mutex
	newV, stabV float64
	down        bool
	queries     []string
}

func (f *fakeProm) Query(_ context.Context, q string, _ time.Time, _ ...promv1.Option) (model.Value, promv1.Warnings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	if f.down {
		return nil, nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	}
	v := f.newV
	if strings.Contains(q, "web-aaa") {
		v = f.stabV
	}
	return model.Vector{{Value: model.SampleValue(v)}}, nil, nil
}

func (f *fakeProm) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.queries)
}

func testAnalysis(name string, mods ...func(*v1alpha1.RolloutAnalysis)) *v1alpha1.RolloutAnalysis {
	ra := &v1alpha1.RolloutAnalysis{
		ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: "1"},
		Spec: v1alpha1.RolloutAnalysisSpec{
			Interval: &metav1.Duration{Duration: 10 * time.Second}, FailureLimit: 2,
			Queries: []v1alpha1.AnalysisQuery{{Name: "error-rate", MaxRatioToStable: "2", Max: "0.01",
				Query: `sum(rate(http_requests_total{code=~"5..",pod=~"{{.Pods}}"}[1m]))`}},
		},
	}
	for _, m := range mods {
		m(ra)
	}
	return ra
}

func analyzerWith(t *testing.T, prom Querier, clock *time.Time, objs ...client.Object) *Analyzer {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	return NewAnalyzer(c, prom, time.Second, m, func() time.Time { return *clock })
}

func workload(annotation string, labels map[string]string) *appsv1.Deployment {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", Labels: labels, Annotations: map[string]string{}}}
	if annotation != "" {
		d.Annotations[AnnotationAnalysis] = annotation
	}
	return d
}

var newRevision = Revision{Kind: "Deployment", Hash: "bbb", Number: "2", Pods: analysis.RevisionPods("web-bbb"), StablePods: analysis.RevisionPods("web-aaa")}

// A relative regression fails after failureLimit samples, one per interval: the new and the stable query each round.
func TestAnalyzerFailsARegressionOncePerInterval(t *testing.T) {
	clock := now
	prom := &fakeProm{newV: 0.2, stabV: 0.01}
	a := analyzerWith(t, prom, &clock, testAnalysis("http"))
	w := workload("http", nil)

	st, _ := a.Analyse(context.Background(), w, newRevision)
	if st == nil || st.Verdict != analysis.Running || prom.count() != 2 {
		t.Fatalf("first sample: %+v, %d queries", st, prom.count())
	}
	clock = clock.Add(5 * time.Second)
	if st, _ = a.Analyse(context.Background(), w, newRevision); st.Verdict != analysis.Running || prom.count() != 2 {
		t.Fatalf("between samples: %+v, %d queries (want none more)", st, prom.count())
	}
	clock = clock.Add(5 * time.Second)
	st, _ = a.Analyse(context.Background(), w, newRevision)
	if st.Verdict != analysis.Fail || prom.count() != 4 {
		t.Fatalf("second sample: %+v, %d queries", st, prom.count())
	}
	for _, want := range []string{"analysis http, query error-rate", "value 0.2 is above 2 x the stable revision's 0.01", "2 failing samples in a row: 0.2, 0.2"} {
		if !strings.Contains(st.Detail, want) {
			t.Errorf("detail %q lacks %q", st.Detail, want)
		}
	}
}

// With Prometheus refusing connections, nothing fails or passes, Prometheus is asked at most once per backoff
// (never for the stable value), one notice is given, and another workload meanwhile does not ask it at all.
func TestAnalyzerPrometheusDown(t *testing.T) {
	clock := now
	prom := &fakeProm{down: true}
	a := analyzerWith(t, prom, &clock, testAnalysis("http", func(ra *v1alpha1.RolloutAnalysis) { ra.Spec.Interval.Duration = 5 * time.Second }))
	w := workload("http", nil)
	rev := newRevision
	rev.Complete = true
	notices := 0
	for range 10 {
		st, notice := a.Analyse(context.Background(), w, rev)
		if st.Verdict != analysis.Running || !strings.Contains(st.Inconclusive, "connection refused") {
			t.Fatalf("verdict %+v", st)
		}
		if notice != "" {
			notices++
		}
		other := workload("http", nil)
		other.Name = "cart"
		if st, _ := a.Analyse(context.Background(), other, rev); st.Verdict != analysis.Running {
			t.Fatalf("other workload: %+v", st)
		}
		clock = clock.Add(5 * time.Second)
	}
	// 50 s: the first query, and one after the 30 s backoff.
	if got := prom.count(); got != 2 {
		t.Errorf("Prometheus asked %d times in 50 s, want 2 (once per 30 s backoff): %v", got, prom.queries)
	}
	if notices != 1 {
		t.Errorf("%d notices, want 1", notices)
	}
}

func TestAnalyzerSelection(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"tier": "prod"}}}
	byNamespace := testAnalysis("by-namespace", func(ra *v1alpha1.RolloutAnalysis) {
		ra.Spec.Selector = &v1alpha1.AnalysisSelector{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}}
	})
	byLabel := testAnalysis("by-label", func(ra *v1alpha1.RolloutAnalysis) {
		ra.Spec.Selector = &v1alpha1.AnalysisSelector{WorkloadSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"http": "true"}}, Kinds: []v1alpha1.WorkloadKind{"Deployment"}}
	})
	statefulOnly := testAnalysis("stateful-only", func(ra *v1alpha1.RolloutAnalysis) {
		ra.Spec.Selector = &v1alpha1.AnalysisSelector{WorkloadSelector: &metav1.LabelSelector{}, Kinds: []v1alpha1.WorkloadKind{"StatefulSet"}}
	})
	named := testAnalysis("named")
	for _, tc := range []struct {
		name       string
		w          *appsv1.Deployment
		nsLabels   map[string]string
		want       []string
		hold       string
		noAnalysis bool
	}{
		{name: "by annotation", w: workload("named", nil), nsLabels: map[string]string{}, want: []string{"named"}},
		{name: "by namespace selector", w: workload("", nil), nsLabels: map[string]string{"tier": "prod"}, want: []string{"by-namespace"}},
		{name: "by workload selector and kind", w: workload("", map[string]string{"http": "true"}), nsLabels: map[string]string{}, want: []string{"by-label"}},
		{name: "both", w: workload("named", map[string]string{"http": "true"}), nsLabels: map[string]string{"tier": "prod"}, want: []string{"by-label", "by-namespace", "named"}},
		{name: "none", w: workload("", nil), nsLabels: map[string]string{}, noAnalysis: true},
		{name: "a missing name holds the revision back", w: workload("named,missing", nil), nsLabels: map[string]string{}, hold: "RolloutAnalysis missing named in rollout-guard.io/analysis does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := now
			n := ns.DeepCopy()
			n.Labels = tc.nsLabels
			a := analyzerWith(t, &fakeProm{}, &clock, n, byNamespace, byLabel, statefulOnly, named)
			got, hold := a.applicable(context.Background(), tc.w, "Deployment")
			if hold != tc.hold {
				t.Fatalf("hold %q, want %q", hold, tc.hold)
			}
			var names []string
			for _, an := range got {
				names = append(names, an.Name)
			}
			if tc.hold == "" && strings.Join(names, ",") != strings.Join(tc.want, ",") {
				t.Fatalf("applies %v, want %v", names, tc.want)
			}
			st, _ := a.Analyse(context.Background(), tc.w, newRevision)
			if (st == nil) != tc.noAnalysis {
				t.Fatalf("status %+v", st)
			}
			if tc.hold != "" && (st.Verdict != analysis.Running || !strings.Contains(st.Detail, "does not exist")) {
				t.Fatalf("a missing analysis must hold the revision: %+v", st)
			}
		})
	}
}

// An invalid analysis that got in (the webhook was down) holds back the workloads that name it, saying why.
func TestAnalyzerInvalidAnalysisHolds(t *testing.T) {
	clock := now
	bad := testAnalysis("bad", func(ra *v1alpha1.RolloutAnalysis) { ra.Spec.Queries[0].Query = "sum(" })
	a := analyzerWith(t, &fakeProm{}, &clock, bad)
	st, notice := a.Analyse(context.Background(), workload("bad", nil), newRevision)
	if st == nil || st.Verdict != analysis.Running || !strings.Contains(st.Detail, "RolloutAnalysis bad is invalid") || notice == "" {
		t.Fatalf("status %+v, notice %q", st, notice)
	}
}

func TestValueOf(t *testing.T) {
	for _, tc := range []struct {
		in      model.Value
		v       float64
		missing string
	}{
		{model.Vector{}, 0, "no data"},
		{model.Vector{{Value: 0.25}}, 0.25, ""},
		{model.Vector{{Value: 1}, {Value: 2}}, 0, "2 series"},
		{&model.Scalar{Value: 3}, 3, ""},
		{model.Matrix{}, 0, "must return one series or a scalar"},
	} {
		got := valueOf(tc.in)
		if got.V != tc.v || !strings.Contains(got.Missing, tc.missing) || (tc.missing == "") != (got.Missing == "") {
			t.Errorf("valueOf(%v) = %+v, want %v %q", tc.in, got, tc.v, tc.missing)
		}
	}
}
