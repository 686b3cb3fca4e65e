package rollback

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/rollout-guard/rollout-guard/analysis"
)

var now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func rs(rev, hash, image string, mods ...func(*appsv1.ReplicaSet)) *appsv1.ReplicaSet {
	r := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name: "web-" + hash, Labels: map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: hash},
			Annotations: map[string]string{revisionAnnotation: rev},
		},
		Spec: appsv1.ReplicaSetSpec{Replicas: ptr.To[int32](3), Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", appsv1.DefaultDeploymentUniqueLabelKey: hash}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}},
		}},
	}
	for _, m := range mods {
		m(r)
	}
	return r
}

func good(r *appsv1.ReplicaSet) { r.Annotations[AnnotationKnownGood] = "2026-11-22T11:00:00Z" }
func rolledBack(r *appsv1.ReplicaSet) {
	r.Annotations[AnnotationRolledBack] = "2026-11-22T11:30:00Z"
}
func intent(generation int) func(*appsv1.ReplicaSet) {
	return func(r *appsv1.ReplicaSet) { r.Annotations[AnnotationRollbackIntent] = fmt.Sprint(generation) }
}
func available(r *appsv1.ReplicaSet) { r.Status.AvailableReplicas, r.Status.ReadyReplicas = 3, 3 }

func deploy(rev string, mods ...func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team", Generation: 4, ResourceVersion: "100", Annotations: map[string]string{revisionAnnotation: rev}},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To[int32](3), ProgressDeadlineSeconds: ptr.To[int32](120)},
		Status:     appsv1.DeploymentStatus{ObservedGeneration: 4, Replicas: 4, UpdatedReplicas: 1, AvailableReplicas: 3},
	}
	for _, m := range mods {
		m(d)
	}
	return d
}

func complete(d *appsv1.Deployment) {
	d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.AvailableReplicas = 3, 3, 3
}

func deadlineExceeded(d *appsv1.Deployment) {
	d.Status.Conditions = append(d.Status.Conditions, appsv1.DeploymentCondition{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
		LastUpdateTime: metav1.NewTime(now.Add(-300 * time.Millisecond)),
	})
}

func pod(hash string, age time.Duration, status corev1.ContainerStatus, conds ...corev1.PodCondition) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-" + hash + "-x", Labels: map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: hash}, CreationTimestamp: metav1.NewTime(now.Add(-age))},
		Status:     corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{status}, Conditions: conds},
	}
}

// startingPod is a pod whose container, with a 5-minute startup probe, started running `running` ago.
func startingPod(hash string, running time.Duration, conds ...corev1.PodCondition) *corev1.Pod {
	p := pod(hash, running+5*time.Second, corev1.ContainerStatus{Name: "web", Image: "slow:2", State: corev1.ContainerState{
		Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(now.Add(-running))},
	}}, conds...)
	p.Spec.Containers = []corev1.Container{{Name: "web", Image: "slow:2", StartupProbe: &corev1.Probe{PeriodSeconds: 10, FailureThreshold: 30}}}
	return p
}

func waiting(reason string, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{Name: "web", Image: "nginx:1.161", RestartCount: restarts, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
}

var settings = Settings{Mode: ModeEnforce, ImagePullGrace: 60 * time.Second, CrashLoopRestarts: 3}

func TestDecide(t *testing.T) {
	v1, v2 := rs("1", "aaa", "nginx:1.7.9", good), rs("2", "bbb", "nginx:1.9.1", good)
	tests := []struct {
		name       string
		snap       Snapshot
		set        Settings
		want       Action
		cause      Cause
		target     string // hash
		subject    string // hash
		detail     string
		wantRequeu bool
	}{
		{
			name: "a fully available new revision is marked known-good",
			snap: Snapshot{Deployment: deploy("2", complete), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("2", "bbb", "nginx:1.9.1", available)}},
			want: ActionMarkGood,
		},
		{
			name: "a marked, available revision needs nothing",
			snap: Snapshot{Deployment: deploy("2", complete), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("2", "bbb", "nginx:1.9.1", available, good)}},
			want: ActionNone,
		},
		{
			name: "a Deployment scaled to zero proves nothing",
			snap: Snapshot{Deployment: deploy("2", complete, func(d *appsv1.Deployment) {
				d.Spec.Replicas = ptr.To[int32](0)
				d.Status = appsv1.DeploymentStatus{ObservedGeneration: 4}
			}),
				ReplicaSets: []*appsv1.ReplicaSet{rs("2", "bbb", "nginx:1.9.1", func(r *appsv1.ReplicaSet) { r.Spec.Replicas = ptr.To[int32](0) })}},
			want: ActionNone,
		},
		{
			name:   "ProgressDeadlineExceeded rolls back to the newest known-good revision",
			snap:   Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v1, v2, rs("3", "ccc", "nginx:1.161")}},
			want:   ActionRollback,
			cause:  CauseProgressDeadline,
			target: "bbb",
			detail: "rolled back from revision 3 (nginx:1.161) to revision 2 (nginx:1.9.1): the rollout exceeded its progress deadline (120s)",
		},
		{
			name:   "the target skips revisions never seen available",
			snap:   Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("2", "bbb", "nginx:1.9.1"), rs("3", "ccc", "nginx:1.161")}},
			want:   ActionRollback,
			cause:  CauseProgressDeadline,
			target: "aaa",
		},
		{
			name: "an old revision that became available unseen is marked before a stall needs it",
			snap: Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("2", "bbb", "nginx:1.9.1", available), rs("3", "ccc", "nginx:1.161")}},
			want: ActionMarkGood, subject: "bbb",
		},
		{
			name:   "an old revision not fully available is not marked",
			snap:   Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("2", "bbb", "nginx:1.9.1", func(r *appsv1.ReplicaSet) { r.Status.AvailableReplicas = 2 }), rs("3", "ccc", "nginx:1.161")}},
			want:   ActionRollback,
			cause:  CauseProgressDeadline,
			target: "aaa",
		},
		{
			name: "an old revision already rolled back is never marked good",
			snap: Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("2", "bbb", "nginx:1.9.1", available, rolledBack), rs("3", "ccc", "nginx:1.161")}},
			want: ActionRollback, cause: CauseProgressDeadline, target: "aaa",
		},
		{
			name:   "an intent at the Deployment's generation: the watcher died before its undo, so it undoes now",
			snap:   Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v1, v2, rs("3", "ccc", "nginx:1.161", intent(4))}},
			want:   ActionRollback,
			cause:  CauseProgressDeadline,
			target: "bbb",
		},
		{
			name: "an intent the Deployment moved past is marked rolled back",
			snap: Snapshot{Deployment: deploy("4", complete), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("4", "bbb", "nginx:1.9.1", available, good), rs("3", "ccc", "nginx:1.161", intent(3))}},
			want: ActionMarkRolledBack, subject: "ccc",
		},
		{
			name: "a deadline exceeded while a new pod is inside its startup allowance waits for it",
			snap: Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "slow:2")},
				Pods: []*corev1.Pod{startingPod("ccc", 200*time.Second)}},
			want:       ActionNone,
			wantRequeu: true,
		},
		{
			name: "a deadline exceeded after the startup allowance rolls back",
			// 300 s of startup budget + 60 s margin, from when the container started
			snap: Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "slow:2")},
				Pods: []*corev1.Pod{startingPod("ccc", 361*time.Second)}},
			want: ActionRollback, cause: CauseProgressDeadline, target: "bbb",
		},
		{
			name: "a ready pod is not starting: the deadline counts",
			snap: Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "slow:2")},
				Pods: []*corev1.Pod{startingPod("ccc", 20*time.Second, corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue})}},
			want: ActionRollback, cause: CauseProgressDeadline, target: "bbb",
		},
		{
			name: "ImagePullBackOff within the grace period waits and asks to look again",
			snap: Snapshot{Deployment: deploy("3"), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.161")},
				Pods: []*corev1.Pod{pod("ccc", 20*time.Second, waiting("ImagePullBackOff", 0))}},
			want:       ActionNone,
			wantRequeu: true,
		},
		{
			name: "ImagePullBackOff past the grace period rolls back before the deadline",
			snap: Snapshot{Deployment: deploy("3"), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.161")},
				Pods: []*corev1.Pod{pod("ccc", 61*time.Second, waiting("ErrImagePull", 0))}},
			want: ActionRollback, cause: CauseImagePull, target: "bbb",
			detail: "container web (nginx:1.161) waiting in ErrImagePull for 1m1s",
		},
		{
			name: "pods of old revisions do not count",
			snap: Snapshot{Deployment: deploy("3"), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.161")},
				Pods: []*corev1.Pod{pod("bbb", 10*time.Minute, waiting("ImagePullBackOff", 0))}},
			want: ActionNone,
		},
		{
			name: "CrashLoopBackOff with enough restarts rolls back",
			snap: Snapshot{Deployment: deploy("3"), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.9.2")},
				Pods: []*corev1.Pod{pod("ccc", 5*time.Second, waiting("CrashLoopBackOff", 3))}},
			want: ActionRollback, cause: CauseCrashLoop, target: "bbb",
		},
		{
			name: "CrashLoopBackOff with few restarts is given time",
			snap: Snapshot{Deployment: deploy("3"), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.9.2")},
				Pods: []*corev1.Pod{pod("ccc", 5*time.Second, waiting("CrashLoopBackOff", 2))}},
			want: ActionNone,
		},
		{
			name: "unschedulable pods are reported, not rolled back, even past the deadline",
			snap: Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.9.2")},
				Pods: []*corev1.Pod{pod("ccc", 2*time.Minute, corev1.ContainerStatus{}, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/1 nodes are available"})}},
			want: ActionReport, cause: CauseUnschedulable, detail: "a rollback would not help",
		},
		{
			name: "a quota failure is reported",
			snap: Snapshot{Deployment: deploy("3", func(d *appsv1.Deployment) {
				d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "exceeded quota"}}
			}), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.9.2")}},
			want: ActionReport, cause: CauseReplicaFailure, detail: "exceeded quota",
		},
		{
			name: "a report already made is not made again",
			snap: Snapshot{Deployment: deploy("3", func(d *appsv1.Deployment) {
				d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue}}
				d.Annotations[AnnotationLastAction] = `{"action":"Report","key":"3/Report/ReplicaFailure","time":"x"}`
			}), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.9.2")}},
			want: ActionNone,
		},
		{
			name: "a revision rolled back once is never rolled back again",
			snap: Snapshot{Deployment: deploy("5", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("5", "ccc", "nginx:1.161", rolledBack)}},
			want: ActionSkip, cause: CauseProgressDeadline, detail: "already rolled back once",
		},
		{
			name: "the last action's record counts before the mark is written",
			snap: Snapshot{Deployment: deploy("5", deadlineExceeded, func(d *appsv1.Deployment) {
				d.Annotations[AnnotationLastAction] = `{"action":"Rollback","fromHash":"ccc","time":"x"}`
			}), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("5", "ccc", "nginx:1.161", rolledBack)}},
			want: ActionSkip, detail: "already rolled back once",
		},
		{
			name: "a pending rolled-back mark is written first",
			snap: Snapshot{Deployment: deploy("4", func(d *appsv1.Deployment) {
				d.Annotations[AnnotationLastAction] = `{"action":"Rollback","fromHash":"ccc","time":"x"}`
			}), ReplicaSets: []*appsv1.ReplicaSet{rs("4", "bbb", "nginx:1.9.1", good), rs("3", "ccc", "nginx:1.161")}},
			want: ActionMarkRolledBack,
		},
		{
			name: "no known-good revision: skip, saying so",
			snap: Snapshot{Deployment: deploy("2", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{rs("1", "aaa", "nginx:1.7.9"), rs("2", "bbb", "nginx:1.161")}},
			want: ActionSkip, detail: "no earlier revision is known",
		},
		{
			name: "dry run says what it would do",
			snap: Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.161")}},
			set:  Settings{Mode: ModeDryRun, ImagePullGrace: time.Minute, CrashLoopRestarts: 3},
			want: ActionDryRun, target: "bbb", detail: "would roll back to revision 2 (nginx:1.9.1)",
		},
		{
			name: "disabled per Deployment",
			snap: Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.161")}},
			set:  Settings{Mode: ModeDisabled},
			want: ActionSkip, detail: "automatic rollback is off",
		},
		{
			name: "under analysis, a complete revision is not marked before the analysis passed",
			snap: Snapshot{Deployment: deploy("2", complete), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("2", "bbb", "nginx:1.9.1", available)},
				Analysis: &analysis.Status{Verdict: analysis.Running, Next: 5 * time.Second}},
			want: ActionNone, wantRequeu: true,
		},
		{
			name: "a complete revision whose analysis passed is marked known-good",
			snap: Snapshot{Deployment: deploy("2", complete), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("2", "bbb", "nginx:1.9.1", available)},
				Analysis: &analysis.Status{Verdict: analysis.Pass}},
			want: ActionMarkGood, subject: "bbb",
		},
		{
			name: "a failed analysis rolls back a complete rollout",
			snap: Snapshot{Deployment: deploy("2", complete), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("2", "bbb", "app:errors", available)},
				Analysis: &analysis.Status{Verdict: analysis.Fail, Detail: "analysis http, query error-rate: value 0.2 is above max 0.05"}},
			want: ActionRollback, cause: CauseAnalysisFailed, target: "aaa",
			detail: "rolled back from revision 2 (app:errors) to revision 1 (nginx:1.7.9): analysis http, query error-rate: value 0.2 is above max 0.05",
		},
		{
			name: "a failed analysis rolls back a rollout under way",
			snap: Snapshot{Deployment: deploy("2"), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("2", "bbb", "app:errors")},
				Analysis: &analysis.Status{Verdict: analysis.Fail, Detail: "analysis http failed"}},
			want: ActionRollback, cause: CauseAnalysisFailed, target: "aaa",
		},
		{
			name: "a failed analysis in dry run reports what it would do",
			snap: Snapshot{Deployment: deploy("2", complete), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("2", "bbb", "app:errors", available)},
				Analysis: &analysis.Status{Verdict: analysis.Fail, Detail: "analysis http failed"}},
			set:  Settings{Mode: ModeDryRun, ImagePullGrace: time.Minute, CrashLoopRestarts: 3},
			want: ActionDryRun, cause: CauseAnalysisFailed, detail: "analysis http failed; would roll back to revision 1",
		},
		{
			name: "an inconclusive analysis neither rolls back nor marks",
			snap: Snapshot{Deployment: deploy("2", complete), ReplicaSets: []*appsv1.ReplicaSet{v1, rs("2", "bbb", "app:v2", available)},
				Analysis: &analysis.Status{Verdict: analysis.Running, Inconclusive: "no data", Next: 30 * time.Second}},
			want: ActionNone, wantRequeu: true,
		},
		{
			name: "under analysis, an old revision seen available is not marked known-good unjudged",
			snap: Snapshot{Deployment: deploy("3"), ReplicaSets: []*appsv1.ReplicaSet{rs("2", "bbb", "app:v2", available), rs("3", "ccc", "app:v3")},
				Analysis: &analysis.Status{Verdict: analysis.Running, Next: 5 * time.Second}},
			want: ActionNone, wantRequeu: true,
		},
		{
			name: "a pod stall wins over a running analysis",
			snap: Snapshot{Deployment: deploy("3", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.161")},
				Analysis: &analysis.Status{Verdict: analysis.Running, Next: 5 * time.Second}},
			want: ActionRollback, cause: CauseProgressDeadline, target: "bbb",
		},
		{
			name: "paused Deployments are left alone",
			snap: Snapshot{Deployment: deploy("3", deadlineExceeded, func(d *appsv1.Deployment) { d.Spec.Paused = true }), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.161")}},
			want: ActionNone,
		},
		{
			name: "a Deployment the controller has not observed yet is left alone",
			snap: Snapshot{Deployment: deploy("3", deadlineExceeded, func(d *appsv1.Deployment) { d.Generation = 5 }), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.161")}},
			want: ActionNone,
		},
		{
			name: "a Deployment being deleted is left alone",
			snap: Snapshot{Deployment: deploy("3", deadlineExceeded, func(d *appsv1.Deployment) { d.DeletionTimestamp = &metav1.Time{Time: now} }), ReplicaSets: []*appsv1.ReplicaSet{v2, rs("3", "ccc", "nginx:1.161")}},
			want: ActionNone,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.snap.Now = now
			set := tt.set
			if set.Mode == "" {
				set = settings
			}
			got := Decide(tt.snap, set)
			if got.Action != tt.want {
				t.Fatalf("action %q (%s), want %q", got.Action, got.Detail, tt.want)
			}
			if tt.cause != "" && got.Cause != tt.cause {
				t.Errorf("cause %q, want %q", got.Cause, tt.cause)
			}
			if tt.subject != "" && (got.Subject == nil || hashOf(got.Subject) != tt.subject) {
				t.Errorf("subject %v, want %s", got.Subject, tt.subject)
			}
			if tt.target != "" && (got.Target == nil || hashOf(got.Target) != tt.target) {
				t.Errorf("target %v, want %s", got.Target, tt.target)
			}
			if !strings.Contains(got.Detail, tt.detail) {
				t.Errorf("detail %q does not contain %q", got.Detail, tt.detail)
			}
			if tt.wantRequeu != (got.RequeueAfter > 0) {
				t.Errorf("requeueAfter %s", got.RequeueAfter)
			}
			// The informer caches hold trimmed objects: Decide must reach the same decision on them.
			if trimmed := Decide(trimSnapshot(t, tt.snap), set); !sameDecision(got, trimmed) {
				t.Errorf("on trimmed objects: %+v\nwant %+v", trimmed, got)
			}
		})
	}
}

func trimSnapshot(t *testing.T, s Snapshot) Snapshot {
	t.Helper()
	out := Snapshot{Now: s.Now, Analysis: s.Analysis}
	d, err := trimDeployment(s.Deployment)
	if err != nil {
		t.Fatal(err)
	}
	out.Deployment = d.(*appsv1.Deployment)
	for _, r := range s.ReplicaSets {
		trimmed, err := trimReplicaSet(r)
		if err != nil {
			t.Fatal(err)
		}
		out.ReplicaSets = append(out.ReplicaSets, trimmed.(*appsv1.ReplicaSet))
	}
	out.Pods = trimPods(t, s.Pods)
	return out
}

// trimPods is pods as the watcher's cache holds them.
func trimPods(t *testing.T, pods []*corev1.Pod) []*corev1.Pod {
	t.Helper()
	var out []*corev1.Pod
	for _, p := range pods {
		trimmed, err := trimPod(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, trimmed.(*corev1.Pod))
	}
	return out
}

func sameDecision(a, b Decision) bool {
	hash := func(r *appsv1.ReplicaSet) string {
		if r == nil {
			return "<none>"
		}
		return hashOf(r)
	}
	return a.Action == b.Action && a.Cause == b.Cause && a.Detail == b.Detail && a.Key == b.Key &&
		a.RequeueAfter == b.RequeueAfter && a.Signal.Equal(b.Signal) &&
		hash(a.Subject) == hash(b.Subject) && hash(a.Target) == hash(b.Target)
}

// The double-rollback window: the watcher recorded its intent and undid, died before marking, and kubectl replace put
// the bad template back and dropped the last action. The next watcher marks the revision from the intent, then skips.
func TestIntentPreventsASecondUndo(t *testing.T) {
	bad := rs("5", "ccc", "nginx:1.161", intent(3))
	snap := Snapshot{Deployment: deploy("5", deadlineExceeded), ReplicaSets: []*appsv1.ReplicaSet{
		rs("1", "aaa", "nginx:1.7.9", good), rs("4", "bbb", "nginx:1.9.1", good), bad}, Now: now}
	if dec := Decide(snap, settings); dec.Action != ActionMarkRolledBack || dec.Subject != bad {
		t.Fatalf("first look: %s %v, want the bad revision marked rolled back", dec.Action, dec.Subject)
	}
	bad.Annotations[AnnotationRolledBack] = "2026-11-23T10:00:00Z"
	if dec := Decide(snap, settings); dec.Action != ActionSkip || !strings.Contains(dec.Detail, "already rolled back once") {
		t.Fatalf("second look: %s (%s), want a skip", dec.Action, dec.Detail)
	}
}

func TestTrimDropsWhatDecideDoesNotRead(t *testing.T) {
	d := deploy("3", func(d *appsv1.Deployment) {
		d.Labels = map[string]string{"app.kubernetes.io/instance": "web"}
		d.Annotations[corev1.LastAppliedConfigAnnotation] = strings.Repeat("x", 4096)
		d.Annotations[AnnotationAutoRollback] = "dryrun"
		d.ManagedFields = []metav1.ManagedFieldsEntry{
			{Manager: "kubectl", FieldsV1: metav1.NewFieldsV1(`{"f:spec":{}}`)},
			{Manager: "kubectl", Subresource: "scale"}, {Manager: "argocd-controller"},
		}
		d.Spec.Template.Spec.Containers = []corev1.Container{{Name: "web", Image: "nginx:1.9.1", Args: []string{"--big"}}}
		d.Status.Conditions = []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Message: "Deployment has minimum availability."},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Message: "ReplicaSet web-bbb has successfully progressed."},
		}
	})
	got, _ := trimDeployment(d)
	td := got.(*appsv1.Deployment)
	if _, ok := td.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
		t.Error("last-applied-configuration kept in the cache")
	}
	if td.Annotations[AnnotationAutoRollback] != "dryrun" || td.Annotations[revisionAnnotation] != "3" {
		t.Errorf("annotations %v: rollout-guard's and the revision must stay", td.Annotations)
	}
	if len(td.ManagedFields) != 2 || td.ManagedFields[0].FieldsV1 != nil || td.ManagedFields[1].Manager != "argocd-controller" {
		t.Errorf("managedFields %+v: want each manager once, without field sets", td.ManagedFields)
	}
	if len(td.Spec.Template.Spec.Containers) != 0 || len(td.Status.Conditions) != 0 {
		t.Errorf("template %+v and healthy conditions %+v kept", td.Spec.Template, td.Status.Conditions)
	}
	if gitOpsManager(td) != "argocd-controller" {
		t.Errorf("GitOps detection lost: %q", gitOpsManager(td))
	}

	r := rs("2", "bbb", "nginx:1.9.1", good)
	r.Annotations["deployment.kubernetes.io/desired-replicas"] = "3"
	r.OwnerReferences = []metav1.OwnerReference{{Kind: "Deployment", Name: "web", UID: "u1", Controller: ptr.To(true)}, {Kind: "Other", Name: "x", UID: "u2"}}
	got, _ = trimReplicaSet(r)
	tr := got.(*appsv1.ReplicaSet)
	if len(tr.Labels) != 1 || hashOf(tr) != "bbb" || len(tr.Annotations) != 2 || len(tr.OwnerReferences) != 1 || tr.OwnerReferences[0].UID != "u1" {
		t.Errorf("ReplicaSet metadata %+v: want pod-template-hash, revision and known-good, the controller reference", tr.ObjectMeta)
	}
	if images(tr) != images(r) {
		t.Errorf("images %q, want %q", images(tr), images(r))
	}

	p := pod("bbb", time.Minute, corev1.ContainerStatus{Name: "web", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}, {Type: corev1.PodScheduled, Status: corev1.ConditionTrue}}
	got, _ = trimPod(p)
	if tp := got.(*corev1.Pod); len(tp.Status.ContainerStatuses) != 0 || len(tp.Status.Conditions) != 1 || !podReady(tp) || tp.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != "bbb" {
		t.Errorf("healthy pod trimmed to %+v: want its hash label and Ready condition only", tp)
	}
}

func TestUndoPatchMatchesKubectl(t *testing.T) {
	d := deploy("3", func(d *appsv1.Deployment) {
		d.Annotations["kubectl.kubernetes.io/last-applied-configuration"] = "{user manifest}"
		d.Annotations["team"] = "payments"
	})
	target := rs("2", "bbb", "nginx:1.9.1", good, func(r *appsv1.ReplicaSet) {
		r.Annotations["deployment.kubernetes.io/desired-replicas"] = "3"
		r.Annotations["owner"] = "team-a"
	})
	raw, err := UndoPatch(d, target, LastAction{Action: ActionRollback, FromHash: "ccc", Time: "t"})
	if err != nil {
		t.Fatal(err)
	}
	var ops []struct {
		Op    string          `json:"op"`
		Path  string          `json:"path"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &ops); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 3 || ops[0].Path != "/metadata/resourceVersion" || string(ops[0].Value) != `"100"` || ops[1].Path != "/spec/template" || ops[2].Path != "/metadata/annotations" {
		t.Fatalf("patch ops = %s", raw)
	}
	var template corev1.PodTemplateSpec
	if err := json.Unmarshal(ops[1].Value, &template); err != nil {
		t.Fatal(err)
	}
	if _, ok := template.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; ok || template.Spec.Containers[0].Image != "nginx:1.9.1" {
		t.Errorf("template = %+v: the hash label must go, the image must be the target's", template)
	}
	var annotations map[string]string
	if err := json.Unmarshal(ops[2].Value, &annotations); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"kubectl.kubernetes.io/last-applied-configuration": "{user manifest}", // kept from the Deployment
		revisionAnnotation: "3", // kept from the Deployment
		"owner":            "team-a",
	}
	for k, v := range want {
		if annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, annotations[k], v)
		}
	}
	for _, k := range []string{"team", "deployment.kubernetes.io/desired-replicas", AnnotationKnownGood} {
		if _, ok := annotations[k]; ok {
			t.Errorf("annotation %s copied, kubectl would not", k)
		}
	}
	if !strings.Contains(annotations[AnnotationLastAction], `"fromHash":"ccc"`) {
		t.Errorf("last action not recorded: %v", annotations)
	}
	if strings.Contains(string(raw), "replicas\":") {
		t.Errorf("patch touches replicas: %s", raw)
	}
}

func TestBreaker(t *testing.T) {
	at := func(sec int) time.Time { return now.Add(time.Duration(sec) * time.Second) }
	type stall struct {
		key, ns string
		sec     int
		want    Scope
	}
	tests := []struct {
		name   string
		stalls []stall
	}{
		{"five stalls keep it closed", []stall{{"a", "x", 0, Closed}, {"b", "x", 1, Closed}, {"c", "y", 2, Closed}, {"d", "z", 3, Closed}, {"e", "z", 4, Closed}}},
		{"one tenant's six stalls pause only its namespace", []stall{
			{"a", "t", 0, Closed}, {"b", "t", 1, Closed}, {"c", "t", 2, Closed}, {"d", "t", 3, Closed}, {"e", "t", 4, Closed},
			{"f", "t", 5, NamespaceOpen}, {"other", "u", 6, Closed}}},
		{"the same workload counts once", []stall{{"a", "t", 0, Closed}, {"a", "t", 1, Closed}, {"a", "t", 2, Closed}, {"a", "t", 3, Closed}, {"a", "t", 4, Closed}, {"a", "t", 5, Closed}}},
		{"six stalls in two namespaces are not the cluster", []stall{
			{"a", "x", 0, Closed}, {"b", "x", 1, Closed}, {"c", "x", 2, Closed}, {"d", "y", 3, Closed}, {"e", "y", 4, Closed}, {"f", "y", 5, Closed}}},
		{"six stalls in three namespaces open it for the cluster", []stall{
			{"a", "x", 0, Closed}, {"b", "x", 1, Closed}, {"c", "y", 2, Closed}, {"d", "y", 3, Closed}, {"e", "z", 4, Closed}, {"f", "z", 5, ClusterOpen}, {"g", "w", 6, ClusterOpen}}},
		{"stalls older than the window are forgotten", []stall{
			{"a", "t", 0, Closed}, {"b", "t", 1, Closed}, {"c", "t", 2, Closed}, {"d", "t", 3, Closed}, {"e", "t", 4, Closed}, {"f", "t", 400, Closed}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBreaker(5, 3, 5*time.Minute)
			for i, s := range tt.stalls {
				if got := b.Record(s.key, s.ns, at(s.sec)); got != s.want {
					t.Fatalf("stall %d (%s in %s): scope %v, want %v", i, s.key, s.ns, got, s.want)
				}
			}
		})
	}
	b := NewBreaker(5, 3, 5*time.Minute)
	for i, ns := range []string{"x", "x", "y", "y", "z", "z"} {
		b.Record(fmt.Sprint(i), ns, at(i))
	}
	if !b.Open(at(200)) || b.Open(at(6*60+10)) {
		t.Error("the cluster-wide breaker must stay open within the window and close after it")
	}
}

// Only stalls that would be rolled back count, and a paused rollback never says it rolled back.
func TestBreakerPause(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	b := NewBreaker(0, 1, time.Minute)
	for _, a := range []Action{ActionDryRun, ActionSkip, ActionReport, ActionMarkGood} {
		if _, paused := b.Pause("k", "t", now, a, "stalled", m); paused {
			t.Errorf("%s paused", a)
		}
	}
	if b.Open(now) {
		t.Fatal("actions that roll nothing back opened the breaker")
	}
	why, paused := b.Pause("k", "t", now, ActionRollback, "container web waiting in ErrImagePull for 1m", m)
	if !paused || !strings.HasPrefix(why, "container web waiting in ErrImagePull for 1m; not rolled back:") || strings.Contains(why, "rolled back from") {
		t.Errorf("paused %v: %q", paused, why)
	}
}

func TestResolveSettings(t *testing.T) {
	tests := []struct {
		name        string
		labels      map[string]string
		annotations map[string]string
		managers    []string
		mode        Mode
		grace       time.Duration
		note        string
	}{
		{name: "global", mode: ModeEnforce, grace: time.Minute},
		{name: "annotation dry run", annotations: map[string]string{AnnotationAutoRollback: "dryrun"}, mode: ModeDryRun, grace: time.Minute},
		{name: "annotation off", annotations: map[string]string{AnnotationAutoRollback: "false"}, mode: ModeDisabled, grace: time.Minute},
		{name: "Argo CD label defaults to dry run", labels: map[string]string{"argocd.argoproj.io/instance": "shop"}, mode: ModeDryRun, grace: time.Minute, note: "managed by argocd"},
		{name: "Flux manager defaults to dry run", managers: []string{"kustomize-controller"}, mode: ModeDryRun, grace: time.Minute, note: "kustomize-controller"},
		{name: "GitOps opted in", managers: []string{"helm-controller"}, annotations: map[string]string{AnnotationAutoRollback: "true"}, mode: ModeEnforce, grace: time.Minute},
		{name: "per-Deployment grace", annotations: map[string]string{AnnotationImagePullGrace: "15s"}, mode: ModeEnforce, grace: 15 * time.Second},
		{name: "malformed grace is ignored with a note", annotations: map[string]string{AnnotationImagePullGrace: "soon"}, mode: ModeEnforce, grace: time.Minute, note: "ignored"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deploy("1")
			d.Labels = tt.labels
			for k, v := range tt.annotations {
				d.Annotations[k] = v
			}
			for _, m := range tt.managers {
				d.ManagedFields = append(d.ManagedFields, metav1.ManagedFieldsEntry{Manager: m})
			}
			cfg := defaultRollbackConfig()
			s := ResolveSettings(cfg, d)
			if s.Mode != tt.mode || s.ImagePullGrace != tt.grace {
				t.Errorf("mode %s grace %s, want %s %s", s.Mode, s.ImagePullGrace, tt.mode, tt.grace)
			}
			if notes := strings.Join(s.Notes, ";"); !strings.Contains(notes, tt.note) || (tt.note == "" && notes != "") {
				t.Errorf("notes %q, want %q", notes, tt.note)
			}
		})
	}
}
