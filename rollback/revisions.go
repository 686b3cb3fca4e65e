package rollback

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rollout-guard/rollout-guard/analysis"
)

// StatefulSets and DaemonSets keep their history in ControllerRevisions, not
// ReplicaSets: each holds the pod template as a patch, and `kubectl rollout
// undo` applies the target's patch to the workload. The watcher does the
// same, with the Deployment path's rules: known-good marks (on the
// ControllerRevision), once per bad revision, a resourceVersion precondition.

// RevisionSnapshot is everything DecideRevisions looks at, observed at Now.
type RevisionSnapshot struct {
	// Workload is a *appsv1.StatefulSet or a *appsv1.DaemonSet.
	Workload client.Object
	// Revisions are the ControllerRevisions the workload controls.
	Revisions []*appsv1.ControllerRevision
	// Pods are the workload's pods.
	Pods []*corev1.Pod
	// Analysis is the verdict of the RolloutAnalyses on the update revision; nil when none applies.
	Analysis *analysis.Status
	Now      time.Time
}

// RevisionDecision is DecideRevisions' answer; its fields mean what
// Decision's do.
type RevisionDecision struct {
	Action          Action
	Cause           Cause
	Subject, Target *appsv1.ControllerRevision
	Detail          string
	// Stall describes the stall alone, for when the decided action is not taken.
	Stall        string
	Signal       time.Time
	Key          string
	RequeueAfter time.Duration
	// StuckPods are what ActionDeleteStuckPods deletes.
	StuckPods []*corev1.Pod
}

// rollout is the part of a StatefulSet's or DaemonSet's state decisions need.
type rollout struct {
	kind string
	// settled: not being deleted, and the controller has seen the current spec.
	settled bool
	// update is the revision being rolled out; podHash the value of its pods'
	// controller-revision-hash label.
	update  *appsv1.ControllerRevision
	podHash string
	// complete: every pod runs the update revision and is available.
	complete bool
}

func rolloutOf(s RevisionSnapshot) rollout {
	switch w := s.Workload.(type) {
	case *appsv1.StatefulSet:
		r := rollout{kind: "StatefulSet", settled: w.DeletionTimestamp == nil && w.Status.ObservedGeneration == w.Generation}
		for _, cr := range s.Revisions {
			if cr.Name == w.Status.UpdateRevision {
				r.update, r.podHash = cr, cr.Name // a StatefulSet labels its pods with the revision's name
			}
		}
		replicas := int32(1)
		if w.Spec.Replicas != nil {
			replicas = *w.Spec.Replicas
		}
		r.complete = replicas > 0 && w.Status.CurrentRevision == w.Status.UpdateRevision &&
			w.Status.UpdatedReplicas == replicas && w.Status.AvailableReplicas >= replicas && w.Status.Replicas == replicas
		return r
	case *appsv1.DaemonSet:
		r := rollout{kind: "DaemonSet", settled: w.DeletionTimestamp == nil && w.Status.ObservedGeneration == w.Generation}
		// The DaemonSet controller gives the revision matching the current
		// template the highest number; it labels its pods with the hash.
		for _, cr := range s.Revisions {
			if r.update == nil || cr.Revision > r.update.Revision {
				r.update = cr
			}
		}
		if r.update != nil {
			r.podHash = r.update.Labels[appsv1.ControllerRevisionHashLabelKey]
		}
		desired := w.Status.DesiredNumberScheduled
		r.complete = desired > 0 && w.Status.UpdatedNumberScheduled == desired &&
			w.Status.NumberAvailable >= desired && w.Status.NumberUnavailable == 0
		return r
	}
	return rollout{}
}

// DecideRevisions is the watcher's pure decision for one StatefulSet or
// DaemonSet.
func DecideRevisions(s RevisionSnapshot, set Settings) RevisionDecision {
	r := rolloutOf(s)
	if !r.settled {
		return RevisionDecision{}
	}
	w := s.Workload
	from := lastAction(w)
	for _, cr := range s.Revisions {
		if cr.Annotations[AnnotationRolledBack] != "" {
			continue
		}
		// the last action names it, or an intent the workload has moved past (see AnnotationRollbackIntent)
		if (from.Action == ActionRollback && cr.Name == from.FromHash) || rolledBackOnce(cr.Annotations, w.GetGeneration()) {
			return RevisionDecision{Action: ActionMarkRolledBack, Subject: cr}
		}
	}
	current := r.update
	if current == nil {
		return RevisionDecision{}
	}
	if stuck := stuckPods(s, r); len(stuck) > 0 {
		names := make([]string, len(stuck))
		for i, p := range stuck {
			names[i] = p.Name
		}
		return RevisionDecision{Action: ActionDeleteStuckPods, Subject: current, StuckPods: stuck,
			Detail: fmt.Sprintf("pod(s) %s of a rolled-back revision never became Ready, and the StatefulSet would wait for them forever", strings.Join(names, ", "))}
	}
	if r.complete {
		if _, marked := current.Annotations[AnnotationKnownGood]; marked {
			return RevisionDecision{}
		}
		if mark, requeue := markComplete(s.Analysis); mark {
			return RevisionDecision{Action: ActionMarkGood, Subject: current}
		} else if requeue > 0 {
			return RevisionDecision{RequeueAfter: requeue}
		}
	}
	found, requeue := podStalls(s.Pods, appsv1.ControllerRevisionHashLabelKey, r.podHash, s.Now, set)
	st := firstStall(found)
	st.requeue = requeue
	if st = analysisStall(s.Analysis, st); st.cause == "" {
		return RevisionDecision{RequeueAfter: st.requeue}
	}
	dec := RevisionDecision{Cause: st.cause, Subject: current, Signal: st.signal, Detail: st.detail, Stall: st.detail}
	once := func(action Action, detail string) RevisionDecision {
		dec.Action, dec.Detail = action, detail
		dec.Key = fmt.Sprintf("%d/%s/%s", current.Revision, action, st.cause)
		if lastAction(w).Key == dec.Key {
			return RevisionDecision{}
		}
		return dec
	}
	if !st.cause.Rollbackable() {
		return once(ActionReport, st.detail+"; a rollback would not help, so none was made")
	}
	if rolledBackOnce(current.Annotations, w.GetGeneration()) || lastAction(w).FromHash == current.Name {
		return once(ActionSkip, fmt.Sprintf("%s; revision %d was already rolled back once, and rollout-guard rolls back a bad revision only once", st.detail, current.Revision))
	}
	if set.Mode == ModeDisabled {
		return once(ActionSkip, fmt.Sprintf("%s; automatic rollback is off for this %s (%s: \"false\")", st.detail, r.kind, AnnotationAutoRollback))
	}
	var target *appsv1.ControllerRevision
	for _, cr := range s.Revisions {
		if cr != current && cr.Annotations[AnnotationKnownGood] != "" && !rolledBackOnce(cr.Annotations, w.GetGeneration()) &&
			(target == nil || cr.Revision > target.Revision) {
			target = cr
		}
	}
	if target == nil {
		return once(ActionSkip, st.detail+"; no earlier revision is known to have been fully available, so there is nothing safe to roll back to")
	}
	dec.Target = target
	if set.Mode == ModeDryRun {
		return once(ActionDryRun, fmt.Sprintf("%s; would roll back to revision %d (%s) [dry run%s]", st.detail, target.Revision, revisionImages(target), noteSuffix(set.Notes)))
	}
	dec.Action = ActionRollback
	dec.Detail = fmt.Sprintf("rolled back from revision %d (%s) to revision %d (%s): %s", current.Revision, revisionImages(current), target.Revision, revisionImages(target), st.detail)
	return dec
}

// stuckPods are a StatefulSet's unready pods of revisions it was rolled back
// from. Restoring the template is not enough: with ordered updates the
// StatefulSet waits for each pod to be Ready before it replaces the next, so
// a pod that never becomes Ready must be deleted, as the Kubernetes
// documentation prescribes for a forced rollback. Its replacement is made
// from the restored revision.
func stuckPods(s RevisionSnapshot, r rollout) []*corev1.Pod {
	if r.kind != "StatefulSet" {
		return nil
	}
	rolledBack := map[string]bool{}
	for _, cr := range s.Revisions {
		if cr.Annotations[AnnotationRolledBack] != "" && cr != r.update {
			rolledBack[cr.Name] = true // a StatefulSet labels its pods with the revision's name
		}
	}
	var stuck []*corev1.Pod
	for _, p := range s.Pods {
		if rolledBack[p.Labels[appsv1.ControllerRevisionHashLabelKey]] && p.DeletionTimestamp == nil && !podReady(p) {
			stuck = append(stuck, p)
		}
	}
	return stuck
}

// firstStall picks the stall to act on: causes a rollback would not fix win,
// as in detectStall.
func firstStall(found []stall) stall {
	for _, st := range found {
		if !st.cause.Rollbackable() {
			return st
		}
	}
	if len(found) > 0 {
		return found[0]
	}
	return stall{}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// revisionImages reads the container images of a ControllerRevision's
// template patch, for messages.
func revisionImages(cr *appsv1.ControllerRevision) string {
	var data struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(cr.Data.Raw, &data); err != nil {
		return "template unreadable"
	}
	var out []string
	for _, c := range data.Spec.Template.Spec.Containers {
		out = append(out, c.Image)
	}
	return strings.Join(out, ", ")
}

// RevisionUndoPatch is the strategic merge patch `kubectl rollout undo`
// sends for a StatefulSet or DaemonSet (the target revision's own patch,
// which replaces the pod template), with the watcher's additions: the
// observed resourceVersion as a precondition and the last-action record.
func RevisionUndoPatch(w client.Object, target *appsv1.ControllerRevision, action LastAction) ([]byte, error) {
	var patch map[string]any
	if err := json.Unmarshal(target.Data.Raw, &patch); err != nil {
		return nil, fmt.Errorf("read revision %s: %w", target.Name, err)
	}
	if _, ok := patch["spec"]; !ok {
		return nil, fmt.Errorf("revision %s holds no spec", target.Name)
	}
	record, err := json.Marshal(action)
	if err != nil {
		return nil, fmt.Errorf("encode last action: %w", err)
	}
	patch["metadata"] = map[string]any{
		"resourceVersion": w.GetResourceVersion(),
		"annotations":     map[string]string{AnnotationLastAction: string(record)},
	}
	return json.Marshal(patch)
}

func revisionString(cr *appsv1.ControllerRevision) string { return strconv.FormatInt(cr.Revision, 10) }
