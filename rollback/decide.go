package rollback

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-guard/rollout-guard/analysis"
	"github.com/rollout-guard/rollout-guard/mutate"
)

// Annotations the watcher reads and writes.
const (
	// AnnotationAutoRollback on a Deployment: "false" turns automatic
	// rollback off, "dryrun" only reports, "true" opts a GitOps-managed
	// Deployment in.
	AnnotationAutoRollback = "rollout-guard.io/auto-rollback"
	// AnnotationImagePullGrace and AnnotationCrashLoopRestarts override the
	// global thresholds for one Deployment.
	AnnotationImagePullGrace    = "rollout-guard.io/image-pull-grace-period"
	AnnotationCrashLoopRestarts = "rollout-guard.io/crash-loop-restarts"
	// AnnotationKnownGood on a ReplicaSet: when the watcher saw it fully available.
	AnnotationKnownGood = "rollout-guard.io/known-good"
	// AnnotationRollbackIntent on a ReplicaSet: the watcher is about to roll back from it; the value is the
	// Deployment's generation then. Written before the undo, so that a crash between the undo and the rolled-back
	// mark cannot lead to a second undo: a generation that moved on means the undo (or a change after it) happened.
	AnnotationRollbackIntent = "rollout-guard.io/rolling-back-at-generation"
	// AnnotationRolledBack on a ReplicaSet: it was rolled back from once; never again.
	AnnotationRolledBack = "rollout-guard.io/rolled-back"
	// AnnotationLastAction on a Deployment: the watcher's last action, as JSON.
	AnnotationLastAction = "rollout-guard.io/last-action"

	revisionAnnotation = "deployment.kubernetes.io/revision"
)

// Cause is why a rollout counts as stalled.
type Cause string

// Causes of a stall. The first four are fixed by a rollback; the others are not.
const (
	CauseProgressDeadline   Cause = "ProgressDeadlineExceeded"
	CauseImagePull          Cause = "ImagePullBackOff"
	CauseCrashLoop          Cause = "CrashLoopBackOff"
	CauseContainerConfig    Cause = "CreateContainerConfigError"
	CauseUnschedulable      Cause = "Unschedulable"
	CauseReplicaFailure     Cause = "ReplicaFailure"
	CauseReplicaSetCreation Cause = "ReplicaSetCreateError"
	// CauseAnalysisFailed: a RolloutAnalysis query breached its threshold in enough samples in a row.
	CauseAnalysisFailed Cause = "AnalysisFailed"
)

// Rollbackable reports whether going back to an earlier template can fix the cause.
func (c Cause) Rollbackable() bool {
	switch c {
	case CauseProgressDeadline, CauseImagePull, CauseCrashLoop, CauseContainerConfig, CauseAnalysisFailed:
		return true
	}
	return false
}

// Action is what the watcher does about a Deployment.
type Action string

// Actions, each one patch, at most one Event and one metric.
const (
	ActionNone           Action = ""
	ActionMarkGood       Action = "MarkKnownGood"
	ActionMarkRolledBack Action = "MarkRolledBack"
	ActionReport         Action = "Report"
	ActionSkip           Action = "Skip"
	ActionDryRun         Action = "DryRun"
	ActionRollback       Action = "Rollback"
	// ActionDeleteStuckPods deletes a StatefulSet's pods that a rollback left
	// stuck (see stuckPods).
	ActionDeleteStuckPods Action = "DeleteStuckPods"
)

// Mode says what the watcher may do for one Deployment.
type Mode string

// Modes, from config or the auto-rollback annotation.
const (
	ModeEnforce  Mode = "enforce"
	ModeDryRun   Mode = "dryrun"
	ModeDisabled Mode = "disabled"
)

// Settings are the thresholds and mode in force for one Deployment.
type Settings struct {
	Mode              Mode
	ImagePullGrace    time.Duration
	CrashLoopRestarts int32
	// Notes explain settings that were ignored (malformed annotations) or chosen implicitly (GitOps).
	Notes []string
}

// Snapshot is everything Decide looks at, observed at Now.
type Snapshot struct {
	Deployment *appsv1.Deployment
	// ReplicaSets are those the Deployment controls.
	ReplicaSets []*appsv1.ReplicaSet
	// Pods are the pods of the Deployment's ReplicaSets.
	Pods []*corev1.Pod
	// Analysis is the verdict of the RolloutAnalyses on the current revision; nil when none applies (or the
	// revision is already marked).
	Analysis *analysis.Status
	Now      time.Time
}

// Decision is what to do, and why.
type Decision struct {
	Action Action
	Cause  Cause
	// Subject is the ReplicaSet the action patches (marks) or rolls back from.
	Subject *appsv1.ReplicaSet
	// Target is the ReplicaSet to roll back to.
	Target *appsv1.ReplicaSet
	// Detail explains the decision to a person (Event message, log).
	Detail string
	// Stall describes the stall alone, for when the decided action is not taken.
	Stall string
	// Signal is when the stall became certain, for the reaction-time metric.
	Signal time.Time
	// Key identifies a report, skip or dry run, recorded in the Deployment's
	// last action so that each is made once per revision.
	Key string
	// RequeueAfter asks to look again, e.g. when a grace period ends.
	RequeueAfter time.Duration
}

// LastAction is what AnnotationLastAction holds.
type LastAction struct {
	Action       Action `json:"action"`
	Cause        Cause  `json:"cause,omitempty"`
	FromRevision string `json:"fromRevision,omitempty"`
	ToRevision   string `json:"toRevision,omitempty"`
	FromHash     string `json:"fromHash,omitempty"`
	Key          string `json:"key,omitempty"`
	Message      string `json:"message,omitempty"`
	// Stall is what was wrong with the revision rolled back from, alone: the webhook quotes it when that revision
	// is applied again (known-bad-revision).
	Stall string `json:"stall,omitempty"`
	Time  string `json:"time"`
}

// Decide is the watcher's pure decision for one Deployment.
func Decide(s Snapshot, set Settings) Decision {
	d := s.Deployment
	if d.DeletionTimestamp != nil || d.Spec.Paused || d.Status.ObservedGeneration != d.Generation {
		return Decision{}
	}
	if mark := pendingRolledBackMark(s); mark != nil {
		return Decision{Action: ActionMarkRolledBack, Subject: mark}
	}
	current := newReplicaSet(s)
	if current == nil {
		return Decision{}
	}
	if fullyAvailable(d, current) {
		if _, marked := current.Annotations[AnnotationKnownGood]; marked {
			return Decision{}
		}
		if mark, requeue := markComplete(s.Analysis); mark {
			return Decision{Action: ActionMarkGood, Subject: current}
		} else if requeue > 0 {
			return Decision{RequeueAfter: requeue}
		}
	} else if s.Analysis == nil {
		// Marking is level-based: a revision that became fully available while the watcher was not looking
		// (restarted, API server down), and was replaced before it looked, is marked when it is seen fully
		// available now, before a stall of the new one needs it as a target. Not under analysis: there, only an
		// analysis that passed makes a revision known-good.
		if old := availableUnmarked(s, current); old != nil {
			return Decision{Action: ActionMarkGood, Subject: old}
		}
	}
	st := analysisStall(s.Analysis, detectStall(s, current, set))
	if st.cause == "" {
		return Decision{RequeueAfter: st.requeue}
	}
	dec := Decision{Cause: st.cause, Subject: current, Signal: st.signal, Detail: st.detail, Stall: st.detail}
	once := func(action Action, detail string) Decision {
		dec.Action, dec.Detail = action, detail
		dec.Key = fmt.Sprintf("%s/%s/%s", d.Annotations[revisionAnnotation], action, st.cause)
		if lastAction(d).Key == dec.Key {
			return Decision{}
		}
		return dec
	}
	if !st.cause.Rollbackable() {
		return once(ActionReport, st.detail+"; a rollback would not help, so none was made")
	}
	if rolledBackOnce(current.Annotations, d.Generation) || rolledBackFrom(d) == hashOf(current) {
		return once(ActionSkip, fmt.Sprintf("%s; revision %s was already rolled back once, and rollout-guard rolls back a bad revision only once", st.detail, revisionOf(current)))
	}
	if set.Mode == ModeDisabled {
		return once(ActionSkip, st.detail+"; automatic rollback is off for this Deployment ("+AnnotationAutoRollback+": \"false\")")
	}
	target := knownGoodTarget(s, current)
	if target == nil {
		return once(ActionSkip, st.detail+"; no earlier revision is known to have been fully available, so there is nothing safe to roll back to")
	}
	dec.Target = target
	if set.Mode == ModeDryRun {
		return once(ActionDryRun, fmt.Sprintf("%s; would roll back to revision %s (%s) [dry run%s]", st.detail, revisionOf(target), images(target), noteSuffix(set.Notes)))
	}
	dec.Action = ActionRollback
	dec.Detail = fmt.Sprintf("rolled back from revision %s (%s) to revision %s (%s): %s", revisionOf(current), images(current), revisionOf(target), images(target), st.detail)
	return dec
}

// markComplete says what becomes of a complete revision not yet marked: marked known-good (no analysis applies, or
// it passed), or looked at again after requeue (the analysis runs on); neither when the analysis failed.
func markComplete(a *analysis.Status) (mark bool, requeue time.Duration) {
	switch {
	case a == nil || a.Verdict == analysis.Pass:
		return true, 0
	case a.Verdict == analysis.Fail:
		return false, 0
	}
	return false, max(a.Next, time.Second)
}

// analysisStall is the stall a failed analysis makes, when the pods show none; a running analysis asks to be looked
// at again when its next sample is due.
func analysisStall(a *analysis.Status, st stall) stall {
	switch {
	case a == nil || st.cause != "":
		return st
	case a.Verdict == analysis.Fail:
		return stall{cause: CauseAnalysisFailed, detail: a.Detail, signal: a.FailedAt}
	case a.Verdict == analysis.Running:
		st.requeue = minPositive(st.requeue, max(a.Next, time.Second))
	}
	return st
}

func noteSuffix(notes []string) string {
	if len(notes) == 0 {
		return ""
	}
	return ": " + strings.Join(notes, "; ")
}

// newReplicaSet is the ReplicaSet of the Deployment's current revision.
func newReplicaSet(s Snapshot) *appsv1.ReplicaSet {
	want := s.Deployment.Annotations[revisionAnnotation]
	if want == "" {
		return nil
	}
	for _, rs := range s.ReplicaSets {
		if rs.Annotations[revisionAnnotation] == want {
			return rs
		}
	}
	return nil
}

// fullyAvailable: the Deployment's rollout to rs is complete and every
// replica is available. A Deployment scaled to zero proves nothing.
func fullyAvailable(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	return replicas > 0 && rs.Spec.Replicas != nil && *rs.Spec.Replicas == replicas &&
		rs.Status.AvailableReplicas >= replicas && d.Status.UpdatedReplicas == replicas &&
		d.Status.AvailableReplicas >= replicas && d.Status.Replicas == replicas
}

// availableUnmarked is an older ReplicaSet that runs the Deployment's full replica count, all available, and carries
// neither mark.
func availableUnmarked(s Snapshot, current *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	replicas := int32(1)
	if s.Deployment.Spec.Replicas != nil {
		replicas = *s.Deployment.Spec.Replicas
	}
	for _, rs := range s.ReplicaSets {
		if rs == current || rs.Annotations[AnnotationKnownGood] != "" || rolledBackOnce(rs.Annotations, s.Deployment.Generation) {
			continue
		}
		if replicas > 0 && rs.Spec.Replicas != nil && *rs.Spec.Replicas == replicas && rs.Status.AvailableReplicas >= replicas {
			return rs
		}
	}
	return nil
}

type stall struct {
	cause   Cause
	detail  string
	signal  time.Time
	requeue time.Duration
}

var imageReasons = []string{"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CreateContainerConfigError"}

// detectStall finds why the new ReplicaSet cannot become available, if it
// cannot. Causes a rollback would not fix win over those it would, since
// they also explain an exceeded deadline.
func detectStall(s Snapshot, rs *appsv1.ReplicaSet, set Settings) stall {
	d := s.Deployment
	var found []stall
	var requeue time.Duration
	for _, c := range d.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			found = append(found, stall{cause: CauseReplicaFailure, detail: "the ReplicaSet cannot create pods: " + c.Message, signal: c.LastTransitionTime.Time})
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ReplicaSetCreateError":
			found = append(found, stall{cause: CauseReplicaSetCreation, detail: "the ReplicaSet cannot be created: " + c.Message, signal: c.LastUpdateTime.Time})
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded":
			// Kubernetes' deadline knows nothing of startup probes: a pod still inside its startup allowance has not
			// failed yet, whatever the deadline says.
			if until := startingUntil(s.Pods, hashOf(rs), d.Spec.MinReadySeconds); until.After(s.Now) {
				requeue = until.Sub(s.Now)
				continue
			}
			found = append(found, stall{cause: CauseProgressDeadline, detail: fmt.Sprintf("the rollout exceeded its progress deadline (%ds)", deref(d.Spec.ProgressDeadlineSeconds)), signal: c.LastUpdateTime.Time})
		}
	}
	pods, podRequeue := podStalls(s.Pods, appsv1.DefaultDeploymentUniqueLabelKey, hashOf(rs), s.Now, set)
	found = append(found, pods...)
	if st := firstStall(found); st.cause != "" {
		return st
	}
	return stall{requeue: minPositive(requeue, podRequeue)}
}

// startingUntil is when the last not-ready pod of the revision with label pod-template-hash=hash runs out of its
// startup allowance (its containers' startup probe budget from when they started, plus minReadySeconds and a
// margin, as the mutation sizes the progress deadline); zero when no pod is starting.
func startingUntil(pods []*corev1.Pod, hash string, minReadySeconds int32) time.Time {
	var until time.Time
	for _, p := range pods {
		if p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] != hash || p.DeletionTimestamp != nil || podReady(p) {
			continue
		}
		allowance := time.Duration(mutate.StartupAllowance(&p.Spec, minReadySeconds)) * time.Second
		if allowance == 0 {
			continue
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running == nil {
				continue
			}
			if end := cs.State.Running.StartedAt.Add(allowance); end.After(until) {
				until = end
			}
		}
	}
	return until
}

// podStalls finds the pods of one revision (label key=value) that stall a
// rollout: waiting on their image or config past the grace period, crash
// looping, or unschedulable. requeue is when a pod still within its grace
// period should be looked at again.
func podStalls(pods []*corev1.Pod, key, value string, now time.Time, set Settings) (found []stall, requeue time.Duration) {
	for _, p := range pods {
		if p.Labels[key] != value || p.DeletionTimestamp != nil {
			continue
		}
		age := now.Sub(p.CreationTimestamp.Time)
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				if age >= set.ImagePullGrace {
					found = append(found, stall{cause: CauseUnschedulable, detail: fmt.Sprintf("pod %s cannot be scheduled: %s", p.Name, c.Message), signal: p.CreationTimestamp.Add(set.ImagePullGrace)})
				} else {
					requeue = minPositive(requeue, set.ImagePullGrace-age)
				}
			}
		}
		for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
			w := cs.State.Waiting
			if w == nil {
				continue
			}
			switch {
			case slices.Contains(imageReasons, w.Reason):
				if age < set.ImagePullGrace {
					requeue = minPositive(requeue, set.ImagePullGrace-age)
					continue
				}
				cause := CauseImagePull
				if w.Reason == "CreateContainerConfigError" {
					cause = CauseContainerConfig
				}
				found = append(found, stall{cause: cause, signal: p.CreationTimestamp.Add(set.ImagePullGrace),
					detail: fmt.Sprintf("pod %s: container %s (%s) waiting in %s for %s", p.Name, cs.Name, cs.Image, w.Reason, age.Round(time.Second))})
			case w.Reason == "CrashLoopBackOff" && cs.RestartCount >= set.CrashLoopRestarts:
				found = append(found, stall{cause: CauseCrashLoop, signal: now,
					detail: fmt.Sprintf("pod %s: container %s (%s) in CrashLoopBackOff after %d restarts", p.Name, cs.Name, cs.Image, cs.RestartCount)})
			}
		}
	}
	return found, requeue
}

// knownGoodTarget is the newest ReplicaSet, other than current, that the
// watcher saw fully available and that was not itself rolled back from.
func knownGoodTarget(s Snapshot, current *appsv1.ReplicaSet) *appsv1.ReplicaSet {
	var best *appsv1.ReplicaSet
	for _, rs := range s.ReplicaSets {
		if rs == current || rs.Annotations[AnnotationKnownGood] == "" || rolledBackOnce(rs.Annotations, s.Deployment.Generation) {
			continue
		}
		if best == nil || revision(rs) > revision(best) {
			best = rs
		}
	}
	return best
}

// pendingRolledBackMark finds the ReplicaSet the Deployment's last action
// rolled back from, when it does not carry the mark yet.
func pendingRolledBackMark(s Snapshot) *appsv1.ReplicaSet {
	from := rolledBackFrom(s.Deployment)
	for _, rs := range s.ReplicaSets {
		if rs.Annotations[AnnotationRolledBack] != "" {
			continue
		}
		// the last action names it, or an intent the Deployment has moved past (its last action may be gone:
		// kubectl replace drops annotations)
		if (from != "" && hashOf(rs) == from) || rolledBackOnce(rs.Annotations, s.Deployment.Generation) {
			return rs
		}
	}
	return nil
}

// rolledBackOnce reports whether the watcher rolled back from a revision (a ReplicaSet or ControllerRevision, by its
// annotations): it carries the mark, or an intent recorded at an earlier generation of its workload.
func rolledBackOnce(annotations map[string]string, generation int64) bool {
	if annotations[AnnotationRolledBack] != "" {
		return true
	}
	at, err := strconv.ParseInt(annotations[AnnotationRollbackIntent], 10, 64)
	return err == nil && at < generation
}

func rolledBackFrom(d *appsv1.Deployment) string {
	if la := lastAction(d); la.Action == ActionRollback {
		return la.FromHash
	}
	return ""
}

// lastAction reads the Deployment's record of the watcher's last action; a
// missing or unreadable record reads as none.
func lastAction(d metav1.Object) LastAction {
	var la LastAction
	if raw, ok := d.GetAnnotations()[AnnotationLastAction]; ok {
		_ = json.Unmarshal([]byte(raw), &la)
	}
	return la
}

func hashOf(rs *appsv1.ReplicaSet) string { return rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey] }

func revision(rs *appsv1.ReplicaSet) int64 {
	n, _ := strconv.ParseInt(rs.Annotations[revisionAnnotation], 10, 64)
	return n
}

func revisionOf(rs *appsv1.ReplicaSet) string { return rs.Annotations[revisionAnnotation] }

func images(rs *appsv1.ReplicaSet) string {
	var out []string
	for _, c := range rs.Spec.Template.Spec.Containers {
		out = append(out, c.Image)
	}
	return strings.Join(out, ", ")
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 || (b > 0 && b < a) {
		return b
	}
	return a
}
