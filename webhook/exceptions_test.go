package webhook

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func testException(name string, expires time.Time, mod func(*v1alpha1.RolloutPolicyException)) *v1alpha1.RolloutPolicyException {
	e := &v1alpha1.RolloutPolicyException{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name},
		Spec: v1alpha1.RolloutPolicyExceptionSpec{
			Policies: []string{"surge-unavailable", "probes-required"}, Workloads: v1alpha1.ExceptionWorkloads{Names: []string{"web"}},
			Reason: "nightly batch", Expires: metav1.NewTime(expires),
		},
	}
	if mod != nil {
		mod(e)
	}
	return e
}

// exceptionValidator is a validating handler whose cache holds objs, at testNow, with opts changed by mod.
func exceptionValidator(t *testing.T, mod func(*config.Options), objs ...client.Object) (*Validator, *exceptionRecorder) {
	t.Helper()
	scheme := testScheme(t)
	opts := config.Default()
	if mod != nil {
		mod(&opts)
	}
	set, metrics := policySetAndMetrics(t, opts)
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&v1alpha1.RolloutPolicyException{}).Build()
	rec := newExceptionRecorder(c, c)
	v := NewValidator(admission.NewDecoder(scheme), opts, set, c, nil, statusWriters{exceptions: rec}, metrics)
	v.now = func() time.Time { return testNow }
	return v, rec
}

func surgeApp(t *testing.T, image string, annotations map[string]string) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(manifestJSON(t, "../test/seeds/surge-app.yaml"), &m); err != nil {
		t.Fatal(err)
	}
	meta := m["metadata"].(map[string]any)
	meta["name"] = "web"
	if annotations != nil {
		meta["annotations"] = annotations
	}
	if image != "" {
		c := m["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
		c["image"] = image
	}
	b, _ := json.Marshal(m)
	return b
}

func admit(t *testing.T, v *Validator, op admissionv1.Operation, kind metav1.GroupVersionKind, object, old []byte) admission.Response {
	t.Helper()
	req := admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID: "uid-1", Kind: kind, Operation: op, Namespace: "team", Name: "web",
		Object: runtime.RawExtension{Raw: object}, OldObject: runtime.RawExtension{Raw: old},
		UserInfo: authenticationv1.UserInfo{Username: "alice"},
	}}
	return v.Handle(context.Background(), req)
}

func TestValidatorAppliesExceptions(t *testing.T) {
	annotated := map[string]string{"rollout-guard.io/exempt": "surge-unavailable,probes-required", "rollout-guard.io/exempt-reason": "mine"}
	tests := []struct {
		name       string
		mod        func(*config.Options)
		objs       []client.Object
		op         admissionv1.Operation
		object     []byte
		old        []byte
		allowed    bool
		want       string // in the message or a warning
		recordUses int64
	}{
		{"no exception: denied, and told who can waive", nil, nil, admissionv1.Create, surgeApp(t, "", nil), nil, false, "RolloutPolicyException", 0},
		{"an exception in force waives, with a warning, and is recorded", nil, []client.Object{testException("batch", testNow.Add(time.Hour), nil)},
			admissionv1.Create, surgeApp(t, "", nil), nil, true, "RolloutPolicyException team/batch waives surge-unavailable until", 1},
		{"an exception of another namespace waives nothing", nil, []client.Object{testException("batch", testNow.Add(time.Hour), func(e *v1alpha1.RolloutPolicyException) { e.Namespace = "other" })},
			admissionv1.Create, surgeApp(t, "", nil), nil, false, "surge-unavailable", 0},
		{"an expired exception waives nothing", nil, []client.Object{testException("batch", testNow.Add(-time.Second), nil)},
			admissionv1.Create, surgeApp(t, "", nil), nil, false, "expired", 0},
		{"the workload's own annotation waives nothing by default", nil, nil, admissionv1.Create, surgeApp(t, "", annotated), nil, false, "waives nothing in this cluster", 0},
		{"the annotation waives when a cluster admin enabled it", func(o *config.Options) { o.Policies.AnnotationExemptions = true }, nil,
			admissionv1.Create, surgeApp(t, "", annotated), nil, true, "exempted from surge-unavailable (reason: mine)", 0},
		{"ratchet: an update that starts no rollout passes an old violation", nil, nil,
			admissionv1.Update, surgeApp(t, "", map[string]string{"team": "x"}), surgeApp(t, "", nil), true, "already broken before this update, which starts no rollout", 0},
		{"no ratchet for a new rollout: judged in full, however the old object got in", nil, nil,
			admissionv1.Update, surgeApp(t, "nginx:1.17.0", nil), surgeApp(t, "", nil), false, "[surge-unavailable]", 0},
		{"a new rollout under an exception in force passes", nil, []client.Object{testException("batch", testNow.Add(time.Hour), nil)},
			admissionv1.Update, surgeApp(t, "nginx:1.17.0", nil), surgeApp(t, "", nil), true, "waives surge-unavailable", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, rec := exceptionValidator(t, tt.mod, tt.objs...)
			resp := admit(t, v, tt.op, deploymentGVK, tt.object, tt.old)
			text := strings.Join(resp.Warnings, "\n")
			if resp.Result != nil {
				text += "\n" + resp.Result.Message
			}
			if resp.Allowed != tt.allowed || !strings.Contains(text, tt.want) {
				t.Errorf("allowed %v, want %v, with %q in:\n%s", resp.Allowed, tt.allowed, tt.want, text)
			}
			var recorded int64
			for _, p := range rec.pending {
				recorded += p.count
			}
			if recorded != tt.recordUses {
				t.Errorf("recorded %d uses, want %d", recorded, tt.recordUses)
			}
		})
	}
}

func TestValidateException(t *testing.T) {
	exceptionGVK := metav1.GroupVersionKind{Group: "rollout-guard.io", Version: "v1alpha1", Kind: "RolloutPolicyException"}
	tests := []struct {
		name    string
		e       *v1alpha1.RolloutPolicyException
		allowed bool
		want    string
	}{
		{"complete", testException("ok", testNow.Add(24*time.Hour), nil), true, ""},
		{"expires too far ahead", testException("x", testNow.Add(91*24*time.Hour), nil), false, "more than 2160h0m0s ahead (limit: policies.maxExceptionDuration)"},
		{"expired", testException("x", testNow.Add(-time.Minute), nil), false, "is in the past"},
		{"no expiry", testException("x", time.Time{}, nil), false, "spec.expires is required"},
		{"no reason", testException("x", testNow.Add(time.Hour), func(e *v1alpha1.RolloutPolicyException) { e.Spec.Reason = " " }), false, "spec.reason is empty"},
		{"no workloads", testException("x", testNow.Add(time.Hour), func(e *v1alpha1.RolloutPolicyException) { e.Spec.Workloads.Names = nil }), false, "names no workload"},
		{"bad selector", testException("x", testNow.Add(time.Hour), func(e *v1alpha1.RolloutPolicyException) {
			e.Spec.Workloads.Selector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "a", Operator: "Near"}}}
		}), false, "spec.workloads.selector"},
		{"unknown policy: admitted with a warning", testException("x", testNow.Add(time.Hour), func(e *v1alpha1.RolloutPolicyException) { e.Spec.Policies = []string{"team-label"} }), true, `no policy named "team-label" is in force`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := exceptionValidator(t, nil)
			raw, _ := json.Marshal(tt.e)
			resp := admit(t, v, admissionv1.Create, exceptionGVK, raw, nil)
			text := strings.Join(resp.Warnings, "\n")
			if resp.Result != nil {
				text += "\n" + resp.Result.Message
			}
			if resp.Allowed != tt.allowed || !strings.Contains(text, tt.want) {
				t.Errorf("allowed %v, want %v, with %q in:\n%s", resp.Allowed, tt.allowed, tt.want, text)
			}
		})
	}
}

// Uses are counted in full, kept newest first and bounded, and written in one update per exception.
func TestExceptionRecorderWritesBoundedUses(t *testing.T) {
	e := testException("batch", testNow.Add(time.Hour), nil)
	v, rec := exceptionValidator(t, nil, e)
	for i := 0; i < 30; i++ {
		resp := admit(t, v, admissionv1.Create, deploymentGVK, surgeApp(t, "", nil), nil)
		if !resp.Allowed {
			t.Fatalf("denied: %v", resp.Result)
		}
	}
	rec.flush(context.Background())
	var got v1alpha1.RolloutPolicyException
	if err := rec.live.Get(context.Background(), types.NamespacedName{Namespace: "team", Name: "batch"}, &got); err != nil {
		t.Fatal(err)
	}
	s := got.Status
	if s.UseCount != 30 || len(s.Uses) != maxRecordedUses || s.LastUsed == nil || s.Uses[0].User != "alice" || s.Uses[0].Workload != "Deployment/web" {
		t.Errorf("status %+v", s)
	}
	if len(rec.pending) != 0 {
		t.Errorf("%d exceptions still pending after a flush", len(rec.pending))
	}
}
