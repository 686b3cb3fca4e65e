package webhook

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// A RolloutPolicy whose update does not compile (stored while the webhook
// was down, say) keeps its last good version enforced, and its status says so.
func TestReloaderKeepsLastGoodVersion(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	good := &v1alpha1.RolloutPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "no-big", Generation: 1},
		Spec:       v1alpha1.RolloutPolicySpec{Rego: "package rollout_guard.no_big\n\ndeny contains \"too many replicas\" if input.object.spec.replicas > 50\n"},
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(good).WithStatusSubresource(good).Build()
	ctx := context.Background()
	set, err := NewPolicySet(ctx, config.Default().Policies)
	if err != nil {
		t.Fatal(err)
	}
	r := &policyReloader{client: c, set: set, lastGood: map[string]*v1alpha1.RolloutPolicy{}}
	big := map[string]any{"operation": "CREATE", "object": map[string]any{"kind": "Deployment", "spec": map[string]any{"replicas": 100}}}
	denies := func() bool {
		vs, err := set.get().eval.Evaluate(ctx, big, "Deployment")
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vs {
			if v.Policy == "no-big" {
				return true
			}
		}
		return false
	}
	if _, err := r.Reconcile(ctx, everything); err != nil {
		t.Fatal(err)
	}
	if !denies() {
		t.Fatal("the valid policy is not enforced")
	}
	var stored v1alpha1.RolloutPolicy
	if err := c.Get(ctx, client.ObjectKey{Name: "no-big"}, &stored); err != nil {
		t.Fatal(err)
	}
	stored.Spec.Rego = "package rollout_guard.no_big\n\ndeny contains msg if {\n  msg := \n}\n"
	stored.Generation = 2
	if err := c.Update(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, everything); err != nil {
		t.Fatal(err)
	}
	if !denies() {
		t.Error("a broken update replaced the last good version")
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "no-big"}, &stored); err != nil {
		t.Fatal(err)
	}
	cond := stored.Status.Conditions[0]
	if cond.Status != metav1.ConditionFalse || !strings.Contains(cond.Message, "does not compile") || !strings.Contains(cond.Message, "stays enforced") {
		t.Errorf("status condition %+v", cond)
	}
	if err := c.Delete(ctx, &stored); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, everything); err != nil {
		t.Fatal(err)
	}
	if denies() {
		t.Error("a deleted policy is still enforced")
	}
}

// Two RolloutPolicies that compile alone but not together (stored while the webhook was down): the one first in name
// order is enforced and Ready; the other is Ready=False with the reason, and is not claimed to be enforced.
func TestReloaderReadyMeansEnforced(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	// team-label and team_label share the package rollout_guard.team_label
	first := &v1alpha1.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "team-label", Generation: 1},
		Spec: v1alpha1.RolloutPolicySpec{Rego: "package rollout_guard.team_label\n\ndeny contains \"needs a team\" if not input.object.metadata.labels.team\n"}}
	second := &v1alpha1.RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "team_label", Generation: 1},
		Spec: v1alpha1.RolloutPolicySpec{Rego: "package rollout_guard.team_label\n\nwarn contains \"x\" if input.object.kind == \"Nothing\"\n"}}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(first, second).WithStatusSubresource(first, second).Build()
	ctx := context.Background()
	set, err := NewPolicySet(ctx, config.Default().Policies)
	if err != nil {
		t.Fatal(err)
	}
	r := &policyReloader{client: c, set: set, lastGood: map[string]*v1alpha1.RolloutPolicy{}}
	if _, err := r.Reconcile(ctx, everything); err != nil {
		t.Fatal(err)
	}
	vs, err := set.get().eval.Evaluate(ctx, map[string]any{"operation": "CREATE", "object": map[string]any{"kind": "Deployment", "metadata": map[string]any{}}}, "Deployment")
	if err != nil {
		t.Fatal(err)
	}
	enforced := false
	for _, v := range vs {
		enforced = enforced || v.Policy == "team-label"
	}
	if !enforced {
		t.Error("team-label is not enforced")
	}
	for name, want := range map[string]metav1.ConditionStatus{"team-label": metav1.ConditionTrue, "team_label": metav1.ConditionFalse} {
		var stored v1alpha1.RolloutPolicy
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &stored); err != nil {
			t.Fatal(err)
		}
		if cond := stored.Status.Conditions[0]; cond.Status != want || (want == metav1.ConditionFalse && cond.Reason != "Conflict") {
			t.Errorf("%s: condition %+v, want %s", name, cond, want)
		}
	}
	// and admission refuses the second one outright
	if err := set.CheckWith(ctx, second); err == nil || !strings.Contains(err.Error(), "taken by policy team-label") {
		t.Errorf("CheckWith: %v", err)
	}
}
