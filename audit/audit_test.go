package audit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies"
	"github.com/rollout-guard/rollout-guard/policies/check"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func finding(ns, name string, vs ...policies.Violation) check.Finding {
	return check.Finding{Kind: "Deployment", Namespace: ns, Name: name, Violations: vs}
}

func deny(policy, msg string) policies.Violation {
	return policies.Violation{Policy: policy, Enforcement: policies.Deny, Message: msg}
}

func warn(policy, msg string) policies.Violation {
	return policies.Violation{Policy: policy, Enforcement: policies.Warn, Message: msg}
}

func TestBuild(t *testing.T) {
	res := Result{
		Workloads: map[string]int{"shop": 3, "clean": 2},
		UIDs:      map[Ref]types.UID{{"Deployment", "shop", "web"}: "uid-web"},
		Findings: []check.Finding{
			finding("shop", "web", warn("image-pinned", "pin it"), deny("team-label", "metadata.labels.team is required")),
			finding("shop", "api", policies.Violation{Policy: "slow", Enforcement: policies.Deny, Failed: true, Message: "could not be evaluated"}),
			finding("shop", "ok"),
			finding("clean", "a"), finding("clean", "b"),
		},
	}
	reports := Build(res, nil, t0, 100)
	if len(reports) != 2 {
		t.Fatalf("%d reports, want one per namespace audited (2)", len(reports))
	}
	shop := reports["shop"]
	if want := (Summary{Pass: 1, Fail: 1, Warn: 1, Error: 1}); shop.Summary != want {
		t.Errorf("shop summary %+v, want %+v", shop.Summary, want)
	}
	var got []string
	for _, r := range shop.Results {
		got = append(got, fmt.Sprintf("%s %s/%s %s", r.Result, r.Resources[0].Kind, r.Resources[0].Name, r.Policy))
	}
	want := "fail Deployment/web team-label; error Deployment/api slow; warn Deployment/web image-pinned"
	if strings.Join(got, "; ") != want {
		t.Errorf("results %q, want failures first: %q", strings.Join(got, "; "), want)
	}
	first := shop.Results[0]
	if first.Source != Source || first.Resources[0].UID != "uid-web" || first.Resources[0].APIVersion != "apps/v1" ||
		first.Timestamp.Seconds != t0.Unix() || first.Category != "RolloutPolicy" || shop.Results[2].Category != "built-in" {
		t.Errorf("result %+v", first)
	}
	if c := reports["clean"]; c.Summary != (Summary{Pass: 2}) || c.Results == nil || len(c.Results) != 0 {
		t.Errorf("a clean namespace's report %+v, want pass 2 and an empty result list (which clears an older one)", c)
	}

	// The next audit finds the same plus one: the known result keeps the time it was first found, the new one is
	// stamped now, and a report that says the same is recognised as such.
	later := t0.Add(10 * time.Minute)
	res.Findings[2] = finding("shop", "ok", deny("team-label", "metadata.labels.team is required"))
	again := Build(res, reports, later, 100)
	for _, r := range again["shop"].Results {
		wantTime := t0.Unix()
		if r.Resources[0].Name == "ok" {
			wantTime = later.Unix()
		}
		if r.Timestamp.Seconds != wantTime {
			t.Errorf("%s/%s %s stamped %d, want %d", r.Resources[0].Name, r.Policy, r.Result, r.Timestamp.Seconds, wantTime)
		}
	}
	if Same(reports["shop"], again["shop"]) {
		t.Error("a report with a new result is the same as before")
	}
	if !Same(reports["clean"], again["clean"]) {
		t.Error("an unchanged report is not recognised: every audit would rewrite it")
	}
	if !Same(again["shop"], Build(res, again, later.Add(time.Hour), 100)["shop"]) {
		t.Error("the same findings an hour later make a different report")
	}
}

func TestBuildIsBounded(t *testing.T) {
	res := Result{Workloads: map[string]int{"big": 50}}
	for i := range 50 {
		res.Findings = append(res.Findings, finding("big", fmt.Sprintf("w%02d", i), warn("image-pinned", "pin it"), deny("team-label", "team")))
	}
	r := Build(res, nil, t0, 30)["big"]
	if len(r.Results) != 30 || r.Omitted != 70 || r.Summary.Fail != 50 || r.Summary.Warn != 50 {
		t.Fatalf("%d results, %d omitted, summary %+v; want 30, 70 and every result counted", len(r.Results), r.Omitted, r.Summary)
	}
	for _, e := range r.Results {
		if e.Result != resultFail {
			t.Fatalf("a bounded report kept a %s before all failures", e.Result)
		}
	}
}

func TestSeriesAreBounded(t *testing.T) {
	res := Result{}
	// ns-00 has the most results, ns-19 the fewest.
	for i := range 20 {
		for j := range 20 - i {
			res.Findings = append(res.Findings, finding(fmt.Sprintf("ns-%02d", i), fmt.Sprint("w", j), deny("a", "x"), warn("b", "y")))
		}
	}
	for _, tc := range []struct {
		limit      int
		namespaces int // kept by name
	}{
		{limit: 100, namespaces: 20},
		{limit: 40, namespaces: 20},
		{limit: 20, namespaces: 9}, // 2 series kept for _other, then 9 namespaces of 2 series each
		{limit: 3, namespaces: 0},
	} {
		s := Series(res, tc.limit)
		total, named := 0, map[string]bool{}
		for k, n := range s {
			total += n
			if k.Namespace != OtherNamespace {
				named[k.Namespace] = true
			}
		}
		if len(s) > tc.limit && tc.limit >= 2 {
			t.Errorf("limit %d: %d series", tc.limit, len(s))
		}
		if total != 420 {
			t.Errorf("limit %d: %d results counted, want all 420", tc.limit, total)
		}
		if len(named) != tc.namespaces {
			t.Errorf("limit %d: %d namespaces by name, want %d", tc.limit, len(named), tc.namespaces)
		}
		if tc.namespaces > 0 && tc.namespaces < 20 && (!named["ns-00"] || named["ns-19"]) {
			t.Errorf("limit %d: folded the namespaces with the most results, not the fewest", tc.limit)
		}
	}
}

func deployment(ns, name string, labels map[string]string) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, UID: types.UID(ns + "-" + name)},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.example/app@sha256:" + strings.Repeat("a", 64)}}},
			},
		},
	}
	return d
}

// Run judges what runs with the cluster's policies and namespaces: a RolloutPolicy's namespace selector from the
// namespaces' labels, skipped and disabled namespaces left out, and a RolloutPolicy that cannot be compiled left out
// without stopping the audit of the rest.
func TestRun(t *testing.T) {
	scheme := testScheme(t)
	policy := func(name, rego string) *v1alpha1.RolloutPolicy {
		return &v1alpha1.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.RolloutPolicySpec{
			Match: v1alpha1.Match{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "prod"}}},
			Rego:  rego,
		}}
	}
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "prod", Labels: map[string]string{"tier": "prod"}}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "dev"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "off", Labels: map[string]string{"rollout-guard.io/policies": "disabled", "tier": "prod"}}},
		deployment("prod", "web", nil), deployment("prod", "api", map[string]string{"team": "shop"}),
		deployment("dev", "web", nil), deployment("kube-system", "dns", nil), deployment("off", "web", nil),
		policy("team-label", "package rollout_guard.team_label\n\ndeny contains \"metadata.labels.team is required\" if { not input.object.metadata.labels.team }\n"),
		policy("broken", "package rollout_guard.broken\n\ndeny contains msg if { msg := input.object.metadata.name; x := }\n"),
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	res, err := Run(context.Background(), c, config.Default(), "", Pace{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "RolloutPolicy broken left out") {
		t.Errorf("errors %v, want the broken policy named", res.Errors)
	}
	if res.Workloads["prod"] != 2 || res.Workloads["dev"] != 1 || res.Workloads["kube-system"] != 0 || res.Workloads["off"] != 0 {
		t.Errorf("workloads audited %v, want prod 2, dev 1, and none in skipped or disabled namespaces", res.Workloads)
	}
	denied := map[string]bool{}
	for _, f := range res.Findings {
		for _, v := range f.Violations {
			if v.Policy == "team-label" {
				denied[f.Namespace+"/"+f.Name] = true
			}
		}
	}
	if len(denied) != 1 || !denied["prod/web"] {
		t.Errorf("team-label found %v, want prod/web only (api has the label, dev is not selected)", denied)
	}
	if res.UIDs[Ref{"Deployment", "prod", "web"}] != "prod-web" {
		t.Errorf("UIDs %v", res.UIDs)
	}
}

func testScheme(tb testing.TB) *runtime.Scheme {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			tb.Fatal(err)
		}
	}
	return scheme
}

// A paced audit rests Rest times as long as each piece of work took, and stops resting when it is cancelled.
func TestPace(t *testing.T) {
	for _, tc := range []struct {
		rest     float64
		worked   time.Duration
		min, max time.Duration
	}{
		{rest: 0, worked: 50 * time.Millisecond, max: 5 * time.Millisecond},
		{rest: 1, worked: 50 * time.Millisecond, min: 45 * time.Millisecond, max: 500 * time.Millisecond},
		{rest: 2, worked: 30 * time.Millisecond, min: 55 * time.Millisecond, max: 500 * time.Millisecond},
	} {
		start := time.Now()
		if err := (Pace{Rest: tc.rest}).rest(context.Background(), start.Add(-tc.worked)); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < tc.min || took > tc.max {
			t.Errorf("rest %v after %s of work took %s, want %s-%s", tc.rest, tc.worked, took, tc.min, tc.max)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := (Pace{Rest: 1}).rest(ctx, time.Now().Add(-time.Hour)); err == nil {
		t.Error("a cancelled audit kept resting")
	}
}
