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

// hashLabel keeps only pod-template-hash, by which ReplicaSets and pods are
// told apart.
func hashLabel(labels map[string]string) map[string]string {
	if h, ok := labels[appsv1.DefaultDeploymentUniqueLabelKey]; ok {
		return map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: h}
	}
	return nil
}

// trimPod keeps identity, owner, the scheduling condition and container
// states.
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	trimmed := &corev1.Pod{ObjectMeta: trimMeta(p.ObjectMeta, hashLabel(p.Labels))}
	trimmed.Annotations = nil
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			trimmed.Status.Conditions = append(trimmed.Status.Conditions, corev1.PodCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message})
		}
	}
	trimmed.Status.ContainerStatuses = trimStatuses(p.Status.ContainerStatuses)
	trimmed.Status.InitContainerStatuses = trimStatuses(p.Status.InitContainerStatuses)
	return trimmed, nil
}

// trimStatuses keeps the waiting containers' reason, and restart counts.
func trimStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	var out []corev1.ContainerStatus
	for _, s := range in {
		if s.State.Waiting == nil {
			continue
		}
		out = append(out, corev1.ContainerStatus{
			Name: s.Name, Image: s.Image, RestartCount: s.RestartCount,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: s.State.Waiting.Reason}},
		})
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
	for _, mf := range d.ManagedFields {
		if !slices.ContainsFunc(trimmed.ManagedFields, func(e metav1.ManagedFieldsEntry) bool { return e.Manager == mf.Manager }) {
			trimmed.ManagedFields = append(trimmed.ManagedFields, metav1.ManagedFieldsEntry{Manager: mf.Manager})
		}
	}
	for _, c := range d.Status.Conditions {
		failing := (c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse) ||
			(c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue)
		if failing {
			trimmed.Status.Conditions = append(trimmed.Status.Conditions, c)
		}
	}
	return trimmed, nil
}
