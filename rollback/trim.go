package rollback

import (
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The informer caches hold every Deployment, ReplicaSet and pod of the
// cluster, so they keep only what Decide reads: with 2,000 Deployments the
// fields dropped here are most of the watcher's memory. Fresh maps and
// slices are built rather than trimmed in place, so that nothing keeps the
// decoded object's larger ones alive. TestTrimKeepsDecisions checks that
// Decide reaches the same decision on trimmed objects.

// keptAnnotation: the Deployment revision and rollout-guard's own
// annotations (settings and marks). The undo reads the Deployment live for
// the rest (last-applied-configuration and the like, which it keeps).
func keptAnnotation(k string) bool {
	return k == revisionAnnotation || strings.HasPrefix(k, "rollout-guard.io/")
}

func trimMeta(m metav1.ObjectMeta, labels map[string]string) metav1.ObjectMeta {
	out := metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		Generation: m.Generation, CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
		Labels: labels,
	}
	for k, v := range m.Annotations {
		if keptAnnotation(k) {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[k] = v
		}
	}
	if ref := metav1.GetControllerOfNoCopy(&m); ref != nil {
		out.OwnerReferences = []metav1.OwnerReference{{APIVersion: ref.APIVersion, Kind: ref.Kind, Name: ref.Name, UID: ref.UID, Controller: ref.Controller}}
	}
	return out
}

// hashLabel keeps only the revision labels, by which ReplicaSets, pods and
// ControllerRevisions are told apart: pod-template-hash and
// controller-revision-hash.
func hashLabel(labels map[string]string) map[string]string {
	var out map[string]string
	for _, k := range []string{appsv1.DefaultDeploymentUniqueLabelKey, appsv1.ControllerRevisionHashLabelKey} {
		if h, ok := labels[k]; ok {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = h
		}
	}
	return out
}

// trimPod keeps identity, owner, the scheduling and ready conditions and
// container states.
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	trimmed := &corev1.Pod{ObjectMeta: trimMeta(p.ObjectMeta, hashLabel(p.Labels))}
	trimmed.Annotations = nil
	for _, c := range p.Status.Conditions {
		switch {
		case c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse:
			trimmed.Status.Conditions = append(trimmed.Status.Conditions, corev1.PodCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message})
		case c.Type == corev1.PodReady:
			trimmed.Status.Conditions = append(trimmed.Status.Conditions, corev1.PodCondition{Type: c.Type, Status: c.Status})
		}
	}
	// The startup probes' timing and when containers started: a pod inside its startup allowance is not stalled.
	for _, c := range p.Spec.Containers {
		if sp := c.StartupProbe; sp != nil {
			trimmed.Spec.Containers = append(trimmed.Spec.Containers, corev1.Container{Name: c.Name, StartupProbe: &corev1.Probe{
				InitialDelaySeconds: sp.InitialDelaySeconds, PeriodSeconds: sp.PeriodSeconds, FailureThreshold: sp.FailureThreshold,
			}})
		}
	}
	trimmed.Status.ContainerStatuses = trimStatuses(p.Status.ContainerStatuses, len(trimmed.Spec.Containers) > 0)
	trimmed.Status.InitContainerStatuses = trimStatuses(p.Status.InitContainerStatuses, false)
	return trimmed, nil
}

// trimStatuses keeps the waiting containers' reason, and restart counts, and when running ones started if
// running is set.
func trimStatuses(in []corev1.ContainerStatus, running bool) []corev1.ContainerStatus {
	var out []corev1.ContainerStatus
	for _, s := range in {
		switch {
		case s.State.Waiting != nil:
			out = append(out, corev1.ContainerStatus{
				Name: s.Name, Image: s.Image, RestartCount: s.RestartCount,
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: s.State.Waiting.Reason}},
			})
		case running && s.State.Running != nil:
			out = append(out, corev1.ContainerStatus{Name: s.Name, State: corev1.ContainerState{
				Running: &corev1.ContainerStateRunning{StartedAt: s.State.Running.StartedAt},
			}})
		}
	}
	return out
}

// trimReplicaSet keeps metadata, replicas, status and the containers'
// names and images (for messages). The undo reads the target's full
// template live.
func trimReplicaSet(obj any) (any, error) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return obj, nil
	}
	trimmed := &appsv1.ReplicaSet{
		ObjectMeta: trimMeta(rs.ObjectMeta, hashLabel(rs.Labels)),
		Spec:       appsv1.ReplicaSetSpec{Replicas: rs.Spec.Replicas},
		Status: appsv1.ReplicaSetStatus{
			Replicas: rs.Status.Replicas, ReadyReplicas: rs.Status.ReadyReplicas, AvailableReplicas: rs.Status.AvailableReplicas,
			ObservedGeneration: rs.Status.ObservedGeneration,
		},
	}
	for _, c := range rs.Spec.Template.Spec.Containers {
		trimmed.Spec.Template.Spec.Containers = append(trimmed.Spec.Template.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	return trimmed, nil
}

// trimDeployment keeps metadata (all labels and the managers' names, for
// GitOps detection), the fields the rollout state depends on, and the
// conditions that signal a stall. The pod template is dropped: the undo
// replaces it whole.
func trimDeployment(obj any) (any, error) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return obj, nil
	}
	trimmed := &appsv1.Deployment{
		ObjectMeta: trimMeta(d.ObjectMeta, d.Labels),
		Spec: appsv1.DeploymentSpec{
			Replicas: d.Spec.Replicas, Paused: d.Spec.Paused, ProgressDeadlineSeconds: d.Spec.ProgressDeadlineSeconds,
		},
		Status: appsv1.DeploymentStatus{
			ObservedGeneration: d.Status.ObservedGeneration, Replicas: d.Status.Replicas,
			UpdatedReplicas: d.Status.UpdatedReplicas, AvailableReplicas: d.Status.AvailableReplicas,
			ReadyReplicas: d.Status.ReadyReplicas,
		},
	}
	trimmed.ManagedFields = managers(d.ManagedFields)
	for _, c := range d.Status.Conditions {
		failing := (c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse) ||
			(c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue)
		if failing {
			trimmed.Status.Conditions = append(trimmed.Status.Conditions, c)
		}
	}
	return trimmed, nil
}

// managers keeps each field manager's name once, without its field set:
// GitOps detection needs only the names.
func managers(in []metav1.ManagedFieldsEntry) []metav1.ManagedFieldsEntry {
	var out []metav1.ManagedFieldsEntry
	for _, mf := range in {
		if !slices.ContainsFunc(out, func(e metav1.ManagedFieldsEntry) bool { return e.Manager == mf.Manager }) {
			out = append(out, metav1.ManagedFieldsEntry{Manager: mf.Manager})
		}
	}
	return out
}

// trimStatefulSet keeps metadata, replicas and the status the rollout state
// depends on; the undo applies a ControllerRevision's template.
func trimStatefulSet(obj any) (any, error) {
	ss, ok := obj.(*appsv1.StatefulSet)
	if !ok {
		return obj, nil
	}
	trimmed := &appsv1.StatefulSet{ObjectMeta: trimMeta(ss.ObjectMeta, ss.Labels), Spec: appsv1.StatefulSetSpec{Replicas: ss.Spec.Replicas}, Status: ss.Status}
	trimmed.Status.Conditions = nil
	trimmed.ManagedFields = managers(ss.ManagedFields)
	return trimmed, nil
}

// trimDaemonSet keeps metadata and the status the rollout state depends on.
func trimDaemonSet(obj any) (any, error) {
	ds, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		return obj, nil
	}
	trimmed := &appsv1.DaemonSet{ObjectMeta: trimMeta(ds.ObjectMeta, ds.Labels), Status: ds.Status}
	trimmed.Status.Conditions = nil
	trimmed.ManagedFields = managers(ds.ManagedFields)
	return trimmed, nil
}

// trimControllerRevision keeps the revision whole but for managedFields: its
// data is the template the undo applies and the images messages name, and
// a workload keeps only a few revisions.
func trimControllerRevision(obj any) (any, error) {
	cr, ok := obj.(*appsv1.ControllerRevision)
	if !ok {
		return obj, nil
	}
	cr.ManagedFields = nil
	return cr, nil
}
