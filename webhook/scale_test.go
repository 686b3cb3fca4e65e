package webhook

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// A scale is judged as the update it amounts to: people are denied a scale into a violation, automation is warned.
func TestValidateScale(t *testing.T) {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "one", Namespace: "team"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "one"}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr.To(intstr.FromString("100%")), MaxSurge: ptr.To(intstr.FromString("25%")),
			}},
			RevisionHistoryLimit: ptr.To[int32](5), ProgressDeadlineSeconds: ptr.To[int32](120),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "one"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.9.1",
					ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}}}}},
			},
		},
	}
	h := newHandlersWithHistory(t, fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(d).Build())
	scale := func(replicas int32, user string) admission.Response {
		raw, err := json.Marshal(autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "one", Namespace: "team"}, Spec: autoscalingv1.ScaleSpec{Replicas: replicas}})
		if err != nil {
			t.Fatal(err)
		}
		return h.validating.(*admission.Webhook).Handler.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
			UID: "u", Operation: admissionv1.Update, Namespace: "team", Name: "one", SubResource: "scale",
			Kind:     metav1.GroupVersionKind{Group: "autoscaling", Version: "v1", Kind: "Scale"},
			Resource: metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
			UserInfo: authenticationv1.UserInfo{Username: user}, Object: runtime.RawExtension{Raw: raw},
		}})
	}
	for _, c := range []struct {
		name     string
		replicas int32
		user     string
		allowed  bool
		says     string
	}{
		{"a person scaling into a violation is denied", 10, "alice", false, "scaling Deployment team/one to 10 replicas: rollout-guard denied this Deployment"},
		{"automation is warned", 10, "system:serviceaccount:kube-system:horizontal-pod-autoscaler", true, "allowed for automation"},
		{"a harmless scale is admitted", 1, "alice", true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := scale(c.replicas, c.user)
			said := strings.Join(resp.Warnings, "|")
			if resp.Result != nil {
				said += resp.Result.Message
			}
			if resp.Allowed != c.allowed || !strings.Contains(said, c.says) {
				t.Errorf("allowed %v, said %q", resp.Allowed, said)
			}
			for _, w := range resp.Warnings {
				if strings.ContainsAny(w, "\n\r") {
					t.Errorf("a warning holds a line break, which the API server drops: %q", w)
				}
			}
		})
	}
}
