package webhook

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies"
)

// knownBadFixture is a Deployment running nginx:1.9.1 (revision 4, re-adopted by the watcher's undo) whose revision 3,
// nginx:1.161, the watcher rolled back at markedAt.
func knownBadFixture(markedAt time.Time) (web *appsv1.Deployment, sets []client.Object) {
	template := func(image string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "nginx", Image: image, Ports: []corev1.ContainerPort{{ContainerPort: 80}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}}}}},
		}
	}
	web = &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team", UID: types.UID("web-uid"), Generation: 6, Annotations: map[string]string{
			annotationLastAction: `{"action":"Rollback","cause":"ImagePullBackOff","fromRevision":"3","toRevision":"2","fromHash":"bad","message":"rolled back from revision 3 (nginx:1.161) to revision 2 (nginx:1.9.1): pod web-bad-x: container nginx (nginx:1.161) waiting in ImagePullBackOff for 1m5s","stall":"pod web-bad-x: container nginx (nginx:1.161) waiting in ImagePullBackOff for 1m5s","time":"2026-11-23T11:50:00Z"}`,
		}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptr.To(intstr.FromString("25%")), MaxUnavailable: ptr.To(intstr.FromInt32(0))}},
			RevisionHistoryLimit: ptr.To[int32](5), ProgressDeadlineSeconds: ptr.To[int32](120), MinReadySeconds: 5,
			Template: template("nginx:1.9.1"),
		},
	}
	rs := func(hash, revision, image string, annotations map[string]string) *appsv1.ReplicaSet {
		t := template(image)
		t.Labels = map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: hash}
		annotations["deployment.kubernetes.io/revision"] = revision
		return &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "web-" + hash, Namespace: "team", Labels: t.Labels, Annotations: annotations,
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: web.UID, Controller: ptr.To(true)}}},
			Spec: appsv1.ReplicaSetSpec{Selector: web.Spec.Selector, Template: t},
		}
	}
	return web, []client.Object{
		rs("good", "4", "nginx:1.9.1", map[string]string{"rollout-guard.io/known-good": "2026-11-23T11:00:00Z"}),
		rs("bad", "3", "nginx:1.161", map[string]string{annotationRolledBack: markedAt.Format(time.RFC3339)}),
		rs("old", "1", "nginx:1.7.9", map[string]string{"rollout-guard.io/known-good": "2026-11-23T10:00:00Z"}),
	}
}

func TestKnownBadRevision(t *testing.T) {
	deny := func(o *config.Options) {
		s := o.Policies.BuiltIns[policies.KnownBadRevision]
		s.Enforcement = policies.Deny
		o.Policies.BuiltIns[policies.KnownBadRevision] = s
	}
	withImage := func(d *appsv1.Deployment, image string, annotations map[string]string) []byte {
		d = d.DeepCopy()
		d.Spec.Template.Spec.Containers[0].Image = image
		for k, v := range annotations {
			d.Annotations[k] = v
		}
		b, _ := json.Marshal(d)
		return b
	}
	const because = "revision 3 (nginx:1.161), which rollout-guard rolled back at 2026-11-23T11:50:00Z because pod web-bad-x: container nginx (nginx:1.161) waiting in ImagePullBackOff"
	retry := map[string]string{"rollout-guard.io/retry-rolled-back": "the registry was down"}
	tests := []struct {
		name     string
		mod      func(*config.Options)
		markedAt time.Time
		image    string
		ann      map[string]string
		allowed  bool
		want     string // in the message or a warning; "" for none at all
	}{
		{"re-applied within the window: a warning by default", nil, testNow.Add(-10 * time.Minute), "nginx:1.161", nil, true, because},
		{"re-applied within the window: denied when configured", deny, testNow.Add(-10 * time.Minute), "nginx:1.161", nil, false, "rollout-guard.io/retry-rolled-back: \"<why>\""},
		{"a deliberate retry passes", deny, testNow.Add(-10 * time.Minute), "nginx:1.161", retry, true, ""},
		{"outside the window it is an ordinary undo", deny, testNow.Add(-25 * time.Hour), "nginx:1.161", nil, true, ""},
		{"an undo to a good revision is not judged", deny, testNow.Add(-10 * time.Minute), "nginx:1.7.9", nil, true, ""},
		{"a new template is not a known-bad one", deny, testNow.Add(-10 * time.Minute), "nginx:1.25.3", nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			web, sets := knownBadFixture(tt.markedAt)
			scheme := testScheme(t)
			opts := config.Default()
			if tt.mod != nil {
				tt.mod(&opts)
			}
			set, metrics := policySetAndMetrics(t, opts)
			live := fake.NewClientBuilder().WithScheme(scheme).WithObjects(sets...).Build()
			v := NewValidator(admission.NewDecoder(scheme), opts, set, nil, live, statusWriters{}, metrics)
			v.now = func() time.Time { return testNow }
			old, _ := json.Marshal(web)
			resp := admit(t, v, admissionv1.Update, deploymentGVK, withImage(web, tt.image, tt.ann), old)
			text := strings.Join(resp.Warnings, "\n")
			if resp.Result != nil {
				text += "\n" + resp.Result.Message
			}
			if resp.Allowed != tt.allowed {
				t.Errorf("allowed %v, want %v:\n%s", resp.Allowed, tt.allowed, text)
			}
			if tt.want == "" && strings.Contains(text, policies.KnownBadRevision) {
				t.Errorf("known-bad-revision spoke:\n%s", text)
			}
			if tt.want != "" && !strings.Contains(text, tt.want) {
				t.Errorf("%q not in:\n%s", tt.want, text)
			}
		})
	}
}
