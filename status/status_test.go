package status

import (
	"bytes"
	"context"
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

	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
	"github.com/rollout-guard/rollout-guard/rollback"
)

func TestParseRef(t *testing.T) {
	for _, tc := range []struct{ in, kind, name, err string }{
		{in: "deployment/web", kind: "Deployment", name: "web"},
		{in: "deploy/web", kind: "Deployment", name: "web"},
		{in: "deployments.apps/web", kind: "Deployment", name: "web"},
		{in: "sts/db", kind: "StatefulSet", name: "db"},
		{in: "DaemonSet/agent", kind: "DaemonSet", name: "agent"},
		{in: "web", err: "want KIND/NAME"},
		{in: "pod/web", err: "guards Deployments, StatefulSets and DaemonSets"},
	} {
		kind, name, err := ParseRef(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRef(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || kind != tc.kind || name != tc.name {
			t.Errorf("ParseRef(%q) = %s %s %v", tc.in, kind, name, err)
		}
	}
}

func owned(uid types.UID) []metav1.OwnerReference {
	return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", UID: uid, Controller: ptr.To(true)}}
}

// The seed story as the watcher leaves it: three revisions, the typo rolled back to the known-good one.
func TestGatherTellsTheStory(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	uid := types.UID("web-uid")
	rs := func(rev, hash, image string, marks map[string]string) *appsv1.ReplicaSet {
		a := map[string]string{"deployment.kubernetes.io/revision": rev}
		for k, v := range marks {
			a[k] = v
		}
		return &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: "web-" + hash, Namespace: "shop", Annotations: a, OwnerReferences: owned(uid)},
			Spec:       appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}}}},
			Status:     appsv1.ReplicaSetStatus{ReadyReplicas: 3},
		}
	}
	lastAction := `{"action":"Rollback","cause":"ImagePullBackOff","fromRevision":"3","toRevision":"4","message":"rolled back from revision 3 (nginx:1.161) to revision 2 (nginx:1.9.1): pod web-x waiting in ImagePullBackOff","time":"2026-12-04T10:00:00Z"}`
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop", UID: uid, Labels: map[string]string{"app": "web"},
		Annotations: map[string]string{"deployment.kubernetes.io/revision": "4", rollback.AnnotationLastAction: lastAction}}}
	exception := func(name, workload string, expires time.Time) *v1alpha1.RolloutPolicyException {
		return &v1alpha1.RolloutPolicyException{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: v1alpha1.RolloutPolicyExceptionSpec{Policies: []string{"image-pinned"}, Workloads: v1alpha1.ExceptionWorkloads{Names: []string{workload}},
				Reason: "vendor image", Expires: metav1.NewTime(expires)}}
	}
	objs := []client.Object{d,
		rs("1", "aaa", "nginx:1.7.9", map[string]string{rollback.AnnotationKnownGood: "2026-12-04T09:00:00Z"}),
		rs("4", "bbb", "nginx:1.9.1", map[string]string{rollback.AnnotationKnownGood: "2026-12-04T09:30:00Z"}),
		rs("3", "ccc", "nginx:1.161", map[string]string{rollback.AnnotationRolledBack: "2026-12-04T10:00:01Z"}),
		&appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "other-ddd", Namespace: "shop", Annotations: map[string]string{"deployment.kubernetes.io/revision": "9"}}},
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: "shop"}, InvolvedObject: corev1.ObjectReference{Kind: "Deployment", Name: "web"},
			Reason: "RolloutGuardRolledBack", Message: "rolled back from revision 3", LastTimestamp: metav1.NewTime(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC))},
		&corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e2", Namespace: "shop"}, InvolvedObject: corev1.ObjectReference{Kind: "Deployment", Name: "web"},
			Reason: "ScalingReplicaSet", Message: "not ours"},
		exception("in-force", "web", time.Now().Add(time.Hour)),
		exception("expired", "web", time.Now().Add(-time.Hour)),
		exception("someone-else", "cart", time.Now().Add(time.Hour)),
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	r, err := Gather(context.Background(), c, &Warnings{}, "Deployment", "shop", "web")
	if err != nil {
		t.Fatal(err)
	}
	var revs []string
	for _, rev := range r.Revisions {
		revs = append(revs, rev.Name)
	}
	if strings.Join(revs, ",") != "web-bbb,web-ccc,web-aaa" || !r.Revisions[0].Current || r.Revisions[1].RolledBack == "" {
		t.Errorf("revisions %+v", r.Revisions)
	}
	if r.LastAction == nil || r.LastAction.Cause != "ImagePullBackOff" {
		t.Errorf("last action %+v", r.LastAction)
	}
	if len(r.Events) != 1 || r.Events[0].Reason != "RolloutGuardRolledBack" {
		t.Errorf("events %+v", r.Events)
	}
	if len(r.Exceptions) != 1 || r.Exceptions[0].Name != "in-force" {
		t.Errorf("exceptions %+v", r.Exceptions)
	}
	var out bytes.Buffer
	r.Text(&out)
	for _, want := range []string{"Deployment shop/web", "4 (current)", "nginx:1.161", "rolled back 2026-12-04T10:00:01Z", "known-good 2026-12-04T09:30:00Z",
		"Last action: Rollback (ImagePullBackOff) at 2026-12-04T10:00:00Z: rolled back from revision 3", "in-force waives image-pinned"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, out.String())
		}
	}
}
