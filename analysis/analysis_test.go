package analysis

import (
	"strings"
	"testing"
	"time"
)

func errorRate() QuerySpec {
	return QuerySpec{Name: "error-rate", Max: "0.05",
		Query: `sum(rate(http_requests_total{namespace="{{.Namespace}}",pod=~"{{.Pods}}",code=~"5.."}[1m])) / sum(rate(http_requests_total{namespace="{{.Namespace}}",pod=~"{{.Pods}}"}[1m]))`}
}

func prepared(t *testing.T, s Spec) *Analysis {
	t.Helper()
	a, errs := Prepare(s)
	if len(errs) > 0 {
		t.Fatalf("Prepare: %v", errs.ToAggregate())
	}
	return a
}

func TestPrepareRefuses(t *testing.T) {
	neg := -time.Second
	for _, tc := range []struct {
		name string
		spec Spec
		want []string // each must be in the error
	}{
		{"no queries", Spec{}, []string{"spec.queries: Required"}},
		{"interval too short", Spec{Interval: time.Second, Queries: []QuerySpec{errorRate()}}, []string{"spec.interval", "at least 5s"}},
		{"negative bake", Spec{BakeTime: &neg, Queries: []QuerySpec{errorRate()}}, []string{"spec.bakeTime"}},
		{"PromQL does not parse", Spec{Queries: []QuerySpec{{Name: "q", Query: "sum(rate(x[1m])", Max: "1"}}}, []string{"spec.queries[0].query", "PromQL"}},
		{"template does not parse", Spec{Queries: []QuerySpec{{Name: "q", Query: "up{pod=~\"{{.Pods\"}", Max: "1"}}}, []string{"spec.queries[0].query", "template"}},
		{"unknown template field", Spec{Queries: []QuerySpec{{Name: "q", Query: "up{pod=~\"{{.Pod}}\"}", Max: "1"}}}, []string{"spec.queries[0].query", "{{.Pods}}"}},
		{"no threshold", Spec{Queries: []QuerySpec{{Name: "q", Query: "up"}}}, []string{"spec.queries[0]", "max, min or maxRatioToStable"}},
		{"threshold not a number", Spec{Queries: []QuerySpec{{Name: "q", Query: "up", Max: "five"}}}, []string{"spec.queries[0].max", "number"}},
		{"min above max", Spec{Queries: []QuerySpec{{Name: "q", Query: "up", Max: "1", Min: "2"}}}, []string{"spec.queries[0].min", "above max"}},
		{"ratio without pods", Spec{Queries: []QuerySpec{{Name: "q", Query: "up", MaxRatioToStable: "2"}}}, []string{"maxRatioToStable", "{{.Pods}}"}},
		{"minTraffic without traffic", Spec{Queries: []QuerySpec{{Name: "q", Query: "up", Max: "1", MinTraffic: "1"}}}, []string{"spec.queries[0].minTraffic", "go together"}},
		{"duplicate names", Spec{Queries: []QuerySpec{errorRate(), errorRate()}}, []string{"spec.queries[1].name: Duplicate"}},
		{"every problem at once", Spec{Interval: time.Second, Queries: []QuerySpec{{Name: "q", Query: "up(", Max: "x"}}}, []string{"spec.interval", "PromQL", "spec.queries[0].max"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, errs := Prepare(tc.spec)
			if a != nil || len(errs) == 0 {
				t.Fatalf("Prepare accepted %+v", tc.spec)
			}
			got := errs.ToAggregate().Error()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("error %q lacks %q", got, w)
				}
			}
		})
	}
}

func TestPrepareDefaults(t *testing.T) {
	a := prepared(t, Spec{Name: "a", Queries: []QuerySpec{errorRate()}})
	if a.Interval != DefaultInterval || a.FailureLimit != DefaultFailureLimit || a.BakeTime != DefaultBakeTime {
		t.Fatalf("defaults: interval %s, failureLimit %d, bake %s", a.Interval, a.FailureLimit, a.BakeTime)
	}
	zero := time.Duration(0)
	if b := prepared(t, Spec{BakeTime: &zero, Queries: []QuerySpec{errorRate()}}); b.BakeTime != 0 {
		t.Fatalf("an explicit bake time of 0 became %s", b.BakeTime)
	}
}

func TestRender(t *testing.T) {
	q := QuerySpec{Name: "q", Query: `rate(x{namespace="{{.Namespace}}",pod=~"{{.Pods}}"}[1m])`, MaxRatioToStable: "2",
		Traffic: `sum(rate(x{pod=~"{{.Pods}}"}[1m]))`, MinTraffic: "1"}
	a := prepared(t, Spec{Queries: []QuerySpec{q}})
	target := Target{Namespace: "shop", Name: "web", Pods: RevisionPods("web-7d4b9c"), StablePods: RevisionPods("web-5f6d8b")}
	query, traffic, stable, err := a.Queries[0].Render(target)
	if err != nil {
		t.Fatal(err)
	}
	if want := `rate(x{namespace="shop",pod=~"web-7d4b9c-[a-z0-9]{5}"}[1m])`; query != want {
		t.Errorf("query = %s, want %s", query, want)
	}
	if want := `sum(rate(x{pod=~"web-7d4b9c-[a-z0-9]{5}"}[1m]))`; traffic != want {
		t.Errorf("traffic = %s, want %s", traffic, want)
	}
	if want := `rate(x{namespace="shop",pod=~"web-5f6d8b-[a-z0-9]{5}"}[1m])`; stable != want {
		t.Errorf("stable = %s, want %s", stable, want)
	}
	target.StablePods = ""
	if _, _, stable, _ := a.Queries[0].Render(target); stable != "" {
		t.Errorf("no stable revision, yet a stable query: %s", stable)
	}
}

func TestPodRegexes(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{RevisionPods("web.v2-abc"), `web\\.v2-abc-[a-z0-9]{5}`},
		{RevisionPods(strings.Repeat("a", 70)), strings.Repeat("a", 58) + `[a-z0-9]{5}`},
		{PodsOf([]string{"db-0", "db-1"}), `db-0|db-1`},
		{PodsOf(nil), `\\x00`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

func num64(v float64) *Value { n := Number(v); return &n }

func TestJudge(t *testing.T) {
	at := time.Unix(1000, 0)
	abs := prepared(t, Spec{Queries: []QuerySpec{errorRate()}}).Queries[0]
	low := prepared(t, Spec{Queries: []QuerySpec{{Name: "rps", Query: "up", Min: "10"}}}).Queries[0]
	traffic := errorRate()
	traffic.Traffic, traffic.MinTraffic = `sum(rate(http_requests_total{pod=~"{{.Pods}}"}[1m]))`, "1"
	withTraffic := prepared(t, Spec{Queries: []QuerySpec{traffic}}).Queries[0]
	ratio := errorRate()
	ratio.Max, ratio.MaxRatioToStable = "", "2"
	rel := prepared(t, Spec{Queries: []QuerySpec{ratio}}).Queries[0]
	ratio.Max = "0.01"
	relMax := prepared(t, Spec{Queries: []QuerySpec{ratio}}).Queries[0]
	for _, tc := range []struct {
		name   string
		q      Query
		o      Observation
		want   Verdict
		detail string
	}{
		{"breach", abs, Observation{Value: Number(0.2)}, Fail, "value 0.2 is above max 0.05"},
		{"at the threshold", abs, Observation{Value: Number(0.05)}, Pass, "not above max"},
		{"below", abs, Observation{Value: Number(0.001)}, Pass, ""},
		{"below min", low, Observation{Value: Number(3)}, Fail, "value 3 is below min 10"},
		{"no data", abs, Observation{Value: Value{Missing: "no data"}}, Inconclusive, "no data"},
		{"NaN", abs, Observation{Value: Number(nan())}, Inconclusive, "NaN"},
		{"query error", abs, Observation{Value: Value{Missing: "Prometheus: connection refused"}}, Inconclusive, "connection refused"},
		{"traffic below minimum", withTraffic, Observation{Value: Number(0.5), Traffic: num64(0.2)}, Inconclusive, "traffic 0.2 is below minTraffic 1"},
		{"traffic missing", withTraffic, Observation{Value: Number(0.5), Traffic: &Value{Missing: "no data"}}, Inconclusive, "traffic: no data"},
		{"traffic enough", withTraffic, Observation{Value: Number(0.5), Traffic: num64(5)}, Fail, "above max"},
		{"relative breach", rel, Observation{Value: Number(0.2), Stable: num64(0.01)}, Fail, "above 2 x the stable revision's 0.01"},
		{"relative within", rel, Observation{Value: Number(0.015), Stable: num64(0.01)}, Pass, ""},
		{"relative without stable data", rel, Observation{Value: Number(0.2), Stable: &Value{Missing: "no data"}}, Inconclusive, "stable revision: no data"},
		{"relative, no stable revision", rel, Observation{Value: Number(0.2)}, Pass, "no stable revision"},
		{"relative and max: ratio breached, max not", relMax, Observation{Value: Number(0.004), Stable: num64(0.001)}, Pass, ""},
		{"relative and max: both breached", relMax, Observation{Value: Number(0.2), Stable: num64(0.01)}, Fail, "and above max 0.01"},
		{"relative and max: stable missing, max not breached", relMax, Observation{Value: Number(0.004), Stable: &Value{Missing: "no data"}}, Pass, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.q.Judge(tc.o, at)
			if r.Verdict != tc.want || !strings.Contains(r.Detail, tc.detail) {
				t.Fatalf("Judge = %s %q, want %s containing %q", r.Verdict, r.Detail, tc.want, tc.detail)
			}
			if r.At != at || r.Query != tc.q.Name {
				t.Fatalf("result names %s at %s", r.Query, r.At)
			}
		})
	}
}

func nan() float64 { var z float64; return z / z }

// A sample of one query: pass, fail or inconclusive.
type step struct {
	after    time.Duration // since the start
	complete bool
	verdict  Verdict // of the sample; "" takes none (only the rollout's state changes)
}

func TestVerdictOverTime(t *testing.T) {
	bake := 20 * time.Second
	a := prepared(t, Spec{Name: "http", Interval: 5 * time.Second, FailureLimit: 2, BakeTime: &bake, Queries: []QuerySpec{errorRate()}})
	start := time.Unix(10_000, 0)
	for _, tc := range []struct {
		name   string
		steps  []step
		want   Verdict
		detail string
	}{
		{"two failures in a row fail", []step{{0, false, Fail}, {5, false, Fail}}, Fail, "2 failing samples in a row: 0.2, 0.2"},
		{"one failure does not", []step{{0, false, Fail}}, Running, ""},
		{"a pass breaks the run", []step{{0, false, Fail}, {5, false, Pass}, {10, false, Fail}}, Running, ""},
		{"inconclusive neither counts nor breaks", []step{{0, false, Fail}, {5, false, Inconclusive}, {10, false, Fail}}, Fail, "2 failing samples"},
		{"only inconclusive", []step{{0, true, Inconclusive}, {5, true, Inconclusive}, {30, true, Inconclusive}}, Running, "inconclusive"},
		{"passing but not complete", []step{{0, false, Pass}, {30, false, Pass}}, Running, "waiting for the rollout"},
		{"baking", []step{{0, true, Pass}, {10, true, Pass}}, Running, "baking until"},
		{"baked", []step{{0, true, Pass}, {20, true, Pass}}, Pass, "passed"},
		{"baked, latest inconclusive", []step{{0, true, Pass}, {20, true, Inconclusive}}, Running, "inconclusive"},
		{"failure during the bake", []step{{0, true, Pass}, {5, true, Fail}, {10, true, Fail}}, Fail, "query error-rate"},
		{"the bake starts again when the rollout is incomplete again", []step{{0, true, Pass}, {15, false, Pass}, {20, true, Pass}, {25, true, Pass}}, Running, "baking"},
		{"a pass from before completion does not count", []step{{0, false, Pass}, {20, true, ""}, {40, true, ""}}, Running, "baked; waiting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st State
			now := start
			for _, s := range tc.steps {
				now = start.Add(s.after * time.Second)
				a.Observe(&st, s.complete, now)
				if s.verdict != "" {
					a.Record(&st, []Result{{Query: "error-rate", Verdict: s.verdict, Value: 0.2, At: now}}, now)
				}
			}
			got := a.Verdict(&st, now)
			if got.Verdict != tc.want || !strings.Contains(got.Detail+" "+got.Inconclusive, tc.detail) {
				t.Fatalf("Verdict = %s %q (inconclusive %q), want %s containing %q", got.Verdict, got.Detail, got.Inconclusive, tc.want, tc.detail)
			}
		})
	}
}

func TestDue(t *testing.T) {
	a := prepared(t, Spec{Interval: 10 * time.Second, Queries: []QuerySpec{errorRate()}})
	var st State
	now := time.Unix(0, 0)
	if !a.Due(&st, now) {
		t.Fatal("a first sample is not due")
	}
	a.Record(&st, nil, now)
	if a.Due(&st, now.Add(9*time.Second)) || !a.Due(&st, now.Add(10*time.Second)) {
		t.Fatal("not due once per interval")
	}
	if next := a.Verdict(&st, now.Add(4*time.Second)).Next; next != 6*time.Second {
		t.Fatalf("next sample in %s, want 6s", next)
	}
}

func TestCombine(t *testing.T) {
	fail := Status{Verdict: Fail, Detail: "analysis b failed"}
	run := Status{Verdict: Running, Next: 3 * time.Second, Detail: "a baking", Inconclusive: "a: no data"}
	run2 := Status{Verdict: Running, Next: 7 * time.Second, Detail: "c"}
	pass := Status{Verdict: Pass}
	for _, tc := range []struct {
		name string
		in   []Status
		want Status
	}{
		{"a failure wins", []Status{run, fail, pass}, fail},
		{"all passed", []Status{pass, pass}, Status{Verdict: Pass}},
		{"running, earliest next", []Status{run2, pass, run}, Status{Verdict: Running, Next: 3 * time.Second, Detail: "c; a baking", Inconclusive: "a: no data"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Combine(tc.in...); got != tc.want {
				t.Fatalf("Combine = %+v, want %+v", got, tc.want)
			}
		})
	}
}
