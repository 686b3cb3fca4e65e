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
