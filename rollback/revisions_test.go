package rollback

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rollout-guard/rollout-guard/analysis"
)

// ctrlRevision is a ControllerRevision of workload "app" holding a template patch
// as the StatefulSet and DaemonSet controllers write it.
func ctrlRevision(n int64, hash, image string, mods ...func(*appsv1.ControllerRevision)) *appsv1.ControllerRevision {
	data := fmt.Sprintf(`{"spec":{"template":{"$patch":"replace","metadata":{"labels":{"app":"app"}},"spec":{"containers":[{"name":"app","image":%q}]}}}}`, image)
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: "app-" + hash, Labels: map[string]string{appsv1.ControllerRevisionHashLabelKey: hash}, Annotations: map[string]string{}},
		Revision:   n,
		Data:       runtime.RawExtension{Raw: []byte(data)},
	}
	for _, m := range mods {
		m(cr)
	}
	return cr
}

func crGood(cr *appsv1.ControllerRevision) {
	cr.Annotations[AnnotationKnownGood] = "2026-11-22T11:00:00Z"
}

func daemonSet(complete bool) *appsv1.DaemonSet {
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team", Generation: 2, ResourceVersion: "50", Annotations: map[string]string{}},
		Status:     appsv1.DaemonSetStatus{ObservedGeneration: 2, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 1, NumberAvailable: 2, NumberUnavailable: 1},
	}
	if complete {
		ds.Status.UpdatedNumberScheduled, ds.Status.NumberAvailable, ds.Status.NumberUnavailable = 3, 3, 0
	}
	return ds
}

func statefulSet(update string, complete bool) *appsv1.StatefulSet {
	ss := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "team", Generation: 2, ResourceVersion: "60", Annotations: map[string]string{}},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3)},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 2, Replicas: 3, UpdateRevision: update, CurrentRevision: "app-aaa",
			UpdatedReplicas: 1, AvailableReplicas: 2},
	}
	if complete {
		ss.Status.CurrentRevision, ss.Status.UpdatedReplicas, ss.Status.AvailableReplicas = update, 3, 3
	}
	return ss
}

// revPod is a pod of the revision whose controller-revision-hash label is label.
func revPod(label string, age time.Duration, ready bool, status corev1.ContainerStatus) *corev1.Pod {
	p := pod("x", age, status)
	p.Name = "app-" + label
	p.Labels = map[string]string{appsv1.ControllerRevisionHashLabelKey: label}
	p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse})
	if ready {
		p.Status.Conditions[len(p.Status.Conditions)-1].Status = corev1.ConditionTrue
	}
	return p
}

func TestDecideRevisions(t *testing.T) {
	running := corev1.ContainerStatus{Name: "app", Image: "nginx:1.9.1", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}
	tests := []struct {
		name     string
		workload client.Object
		revs     []*appsv1.ControllerRevision
		pods     []*corev1.Pod
		set      Settings
		want     Action
		target   string // ControllerRevision name
		detail   string
		stuck    int
		requeue  bool
		analysis *analysis.Status
	}{
		{
			name: "a DaemonSet fully on its newest revision marks it known-good", workload: daemonSet(true),
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.9.1")},
			want: ActionMarkGood, target: "",
		},
		{
			name: "a marked revision needs nothing", workload: daemonSet(true),
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.9.1", crGood)},
			want: ActionNone,
		},
		{
			name: "a spec the controller has not seen yet is left alone",
			workload: func() client.Object {
				ds := daemonSet(false)
				ds.Generation = 3
				return ds
			}(),
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.161")},
			pods: []*corev1.Pod{revPod("bbb", 5*time.Minute, false, waiting("ImagePullBackOff", 0))},
			want: ActionNone,
		},
		{
			name: "a DaemonSet stuck on a bad image rolls back to the known-good revision", workload: daemonSet(false),
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.161")},
			pods: []*corev1.Pod{revPod("aaa", time.Hour, true, running), revPod("bbb", 2*time.Minute, false, waiting("ImagePullBackOff", 0))},
			want: ActionRollback, target: "app-aaa", detail: "from revision 2 (nginx:1.161) to revision 1 (nginx:1.7.9)",
		},
		{
			name: "within the grace period it looks again later", workload: daemonSet(false),
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.161")},
			pods: []*corev1.Pod{revPod("bbb", 10*time.Second, false, waiting("ErrImagePull", 0))},
			want: ActionNone, requeue: true,
		},
		{
			name: "a StatefulSet rolls back and deletes its stuck pods", workload: statefulSet("app-bbb", false),
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.161")},
			pods: []*corev1.Pod{revPod("app-aaa", time.Hour, true, running), revPod("app-bbb", 2*time.Minute, false, waiting("ImagePullBackOff", 0))},
			want: ActionRollback, target: "app-aaa", detail: "to revision 1 (nginx:1.7.9)",
		},
		{
			name: "after a StatefulSet rollback its stuck pods of the bad revision are deleted", workload: statefulSet("app-aaa", false),
			revs: []*appsv1.ControllerRevision{ctrlRevision(3, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.161", func(cr *appsv1.ControllerRevision) {
				cr.Annotations[AnnotationRolledBack] = "2026-11-22T11:30:00Z"
			})},
			pods: []*corev1.Pod{revPod("app-aaa", time.Hour, true, running), revPod("app-bbb", 3*time.Minute, false, waiting("ImagePullBackOff", 0))},
			want: ActionDeleteStuckPods, detail: "app-app-bbb", stuck: 1,
		},
		{
			name: "a Ready pod of a rolled-back revision is left to the StatefulSet", workload: statefulSet("app-aaa", false),
			revs: []*appsv1.ControllerRevision{ctrlRevision(3, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.9.1", func(cr *appsv1.ControllerRevision) {
				cr.Annotations[AnnotationRolledBack] = "2026-11-22T11:30:00Z"
			})},
			pods: []*corev1.Pod{revPod("app-aaa", time.Hour, true, running), revPod("app-bbb", 3*time.Minute, true, running)},
			want: ActionNone,
		},
		{
			name: "a DaemonSet replaces its pods itself: nothing to delete", workload: daemonSet(false),
			revs: []*appsv1.ControllerRevision{ctrlRevision(3, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.161", func(cr *appsv1.ControllerRevision) {
				cr.Annotations[AnnotationRolledBack] = "2026-11-22T11:30:00Z"
			})},
			pods: []*corev1.Pod{revPod("bbb", 3*time.Minute, false, waiting("ImagePullBackOff", 0))},
			want: ActionNone,
		},
		{
			name: "a crash-looping StatefulSet revision is rolled back", workload: statefulSet("app-bbb", false),
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.9.1")},
			pods: []*corev1.Pod{revPod("app-bbb", 2*time.Minute, false, waiting("CrashLoopBackOff", 4))},
			want: ActionRollback, target: "app-aaa", detail: "CrashLoopBackOff after 4 restarts",
		},
		{
			name: "no known-good revision: skipped, with why", workload: daemonSet(false),
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9"), ctrlRevision(2, "bbb", "nginx:1.161")},
			pods: []*corev1.Pod{revPod("bbb", 2*time.Minute, false, waiting("ImagePullBackOff", 0))},
			want: ActionSkip, detail: "nothing safe to roll back to",
		},
		{
			name: "a revision rolled back from once is not rolled back again", workload: daemonSet(false),
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(3, "bbb", "nginx:1.161", func(cr *appsv1.ControllerRevision) {
				cr.Annotations[AnnotationRolledBack] = "2026-11-22T11:30:00Z"
			})},
			pods: []*corev1.Pod{revPod("bbb", 2*time.Minute, false, waiting("ImagePullBackOff", 0))},
			want: ActionSkip, detail: "already rolled back once",
		},
		{
			name: "an intent at the workload's generation: the watcher died before its undo, so it undoes now", workload: daemonSet(false),
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.161", func(cr *appsv1.ControllerRevision) {
				cr.Annotations[AnnotationRollbackIntent] = "2"
			})},
			pods: []*corev1.Pod{revPod("aaa", time.Hour, true, running), revPod("bbb", 2*time.Minute, false, waiting("ImagePullBackOff", 0))},
			want: ActionRollback, target: "app-aaa",
		},
		{
			name: "an intent the workload moved past marks the revision, even without a last action", workload: daemonSet(false),
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(3, "bbb", "nginx:1.161", func(cr *appsv1.ControllerRevision) {
				cr.Annotations[AnnotationRollbackIntent] = "1"
			})},
			pods: []*corev1.Pod{revPod("bbb", 2*time.Minute, false, waiting("ImagePullBackOff", 0))},
			want: ActionMarkRolledBack,
		},
		{
			name: "dry run says what it would do", workload: daemonSet(false), set: Settings{Mode: ModeDryRun, ImagePullGrace: time.Minute, CrashLoopRestarts: 3},
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.161")},
			pods: []*corev1.Pod{revPod("bbb", 2*time.Minute, false, waiting("ImagePullBackOff", 0))},
			want: ActionDryRun, target: "app-aaa", detail: "would roll back to revision 1 (nginx:1.7.9)",
		},
		{
			name: "unschedulable pods are reported, not rolled back", workload: daemonSet(false),
			revs: []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.9.1")},
			pods: []*corev1.Pod{func() *corev1.Pod {
				p := revPod("bbb", 2*time.Minute, false, running)
				p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/1 nodes are available"})
				return p
			}()},
			want: ActionReport, detail: "cannot be scheduled",
		},
		{
			name: "under analysis, a DaemonSet fully on its newest revision waits for the analysis", workload: daemonSet(true),
			revs:     []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.9.1")},
			analysis: &analysis.Status{Verdict: analysis.Running, Next: 10 * time.Second},
			want:     ActionNone, requeue: true,
		},
		{
			name: "a DaemonSet revision whose analysis passed is marked", workload: daemonSet(true),
			revs:     []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.9.1")},
			analysis: &analysis.Status{Verdict: analysis.Pass},
			want:     ActionMarkGood,
		},
		{
			name: "a failed analysis rolls back a complete StatefulSet", workload: statefulSet("app-bbb", true),
			revs:     []*appsv1.ControllerRevision{ctrlRevision(1, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "app:errors")},
			pods:     []*corev1.Pod{revPod("app-bbb", 2*time.Minute, true, running)},
			analysis: &analysis.Status{Verdict: analysis.Fail, Detail: "analysis http, query error-rate: value 0.2 is above max 0.05"},
			want:     ActionRollback, target: "app-aaa", detail: "to revision 1 (nginx:1.7.9): analysis http, query error-rate",
		},
		{
			name: "after a rollback the bad revision gets its mark",
			workload: func() client.Object {
				ds := daemonSet(false)
				raw, _ := json.Marshal(LastAction{Action: ActionRollback, FromHash: "app-bbb"})
				ds.Annotations[AnnotationLastAction] = string(raw)
				return ds
			}(),
			revs: []*appsv1.ControllerRevision{ctrlRevision(3, "aaa", "nginx:1.7.9", crGood), ctrlRevision(2, "bbb", "nginx:1.161")},
			want: ActionMarkRolledBack,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := tt.set
			if set.Mode == "" {
				set = settings
			}
			got := DecideRevisions(RevisionSnapshot{Workload: tt.workload, Revisions: tt.revs, Pods: tt.pods, Analysis: tt.analysis, Now: now}, set)
			if got.Action != tt.want {
				t.Fatalf("action %q (%s), want %q", got.Action, got.Detail, tt.want)
			}
			if tt.target != "" && (got.Target == nil || got.Target.Name != tt.target) {
				t.Errorf("target %v, want %s", got.Target, tt.target)
			}
			if !strings.Contains(got.Detail, tt.detail) {
				t.Errorf("detail %q does not contain %q", got.Detail, tt.detail)
			}
			if len(got.StuckPods) != tt.stuck {
				t.Errorf("%d stuck pods, want %d", len(got.StuckPods), tt.stuck)
			}
			if tt.requeue != (got.RequeueAfter > 0) {
				t.Errorf("requeueAfter %s", got.RequeueAfter)
			}
			// The informer caches hold trimmed objects: the decision must not change.
			trimmed := DecideRevisions(trimRevisionSnapshot(t, RevisionSnapshot{Workload: tt.workload, Revisions: tt.revs, Pods: tt.pods, Analysis: tt.analysis, Now: now}), set)
			if trimmed.Action != got.Action || trimmed.Detail != got.Detail || trimmed.Key != got.Key || len(trimmed.StuckPods) != len(got.StuckPods) ||
				(got.Target != nil) != (trimmed.Target != nil) || (got.Target != nil && got.Target.Name != trimmed.Target.Name) {
				t.Errorf("on trimmed objects: %+v\nwant %+v", trimmed, got)
			}
		})
	}
}

func trimRevisionSnapshot(t *testing.T, s RevisionSnapshot) RevisionSnapshot {
	t.Helper()
	out := RevisionSnapshot{Now: s.Now, Analysis: s.Analysis}
	var w any
	var err error
	switch s.Workload.(type) {
	case *appsv1.StatefulSet:
		w, err = trimStatefulSet(s.Workload)
	case *appsv1.DaemonSet:
		w, err = trimDaemonSet(s.Workload)
	}
	if err != nil {
		t.Fatal(err)
	}
	out.Workload = w.(client.Object)
	for _, cr := range s.Revisions {
		trimmed, err := trimControllerRevision(cr.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		out.Revisions = append(out.Revisions, trimmed.(*appsv1.ControllerRevision))
	}
	out.Pods = trimPods(t, s.Pods)
	return out
}

func TestRevisionUndoPatchIsTheRevisionsOwn(t *testing.T) {
	ss := statefulSet("app-bbb", false)
	target := ctrlRevision(1, "aaa", "nginx:1.7.9", crGood)
	raw, err := RevisionUndoPatch(ss, target, LastAction{Action: ActionRollback, FromHash: "app-bbb"})
	if err != nil {
		t.Fatal(err)
	}
	var patch struct {
		Metadata struct {
			ResourceVersion string            `json:"resourceVersion"`
			Annotations     map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec map[string]json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(raw, &patch); err != nil {
		t.Fatal(err)
	}
	if patch.Metadata.ResourceVersion != "60" {
		t.Errorf("resourceVersion precondition %q, want 60", patch.Metadata.ResourceVersion)
	}
	if !strings.Contains(patch.Metadata.Annotations[AnnotationLastAction], `"fromHash":"app-bbb"`) {
		t.Errorf("last action %q", patch.Metadata.Annotations[AnnotationLastAction])
	}
	if len(patch.Spec) != 1 || !strings.Contains(string(patch.Spec["template"]), `"$patch":"replace"`) || !strings.Contains(string(patch.Spec["template"]), "nginx:1.7.9") {
		t.Errorf("spec %s: want only the revision's template, replacing the current one", raw)
	}
	if _, err := RevisionUndoPatch(ss, &appsv1.ControllerRevision{ObjectMeta: metav1.ObjectMeta{Name: "broken"}, Data: runtime.RawExtension{Raw: []byte(`{"x":1}`)}}, LastAction{}); err == nil {
		t.Error("a revision without a spec made a patch")
	}
}
