package rollback

import (
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// keptAnnotations stay as they are on the Deployment during an undo instead
// of being copied from the target ReplicaSet: the same list kubectl keeps.
var keptAnnotations = map[string]bool{
	corev1.LastAppliedConfigAnnotation:          true,
	revisionAnnotation:                          true,
	"deployment.kubernetes.io/revision-history": true,
	"deployment.kubernetes.io/desired-replicas": true,
	"deployment.kubernetes.io/max-replicas":     true,
	appsv1.DeprecatedRollbackTo:                 true,
}

// UndoPatch is the JSON patch `kubectl rollout undo` sends to restore
// target's template and annotations on d, with two differences: it is
// conditional on d's resourceVersion, so a concurrent change makes it fail
// with a conflict instead of overwriting that change, and it records the
// watcher's action. It never touches replicas.
func UndoPatch(d *appsv1.Deployment, target *appsv1.ReplicaSet, action LastAction) ([]byte, error) {
	template := target.Spec.Template.DeepCopy()
	delete(template.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
	annotations := map[string]string{}
	for k := range keptAnnotations {
		if v, ok := d.Annotations[k]; ok {
			annotations[k] = v
		}
	}
	for k, v := range target.Annotations {
		if !keptAnnotations[k] && !watcherMark(k) {
			annotations[k] = v
		}
	}
	record, err := json.Marshal(action)
	if err != nil {
		return nil, fmt.Errorf("encode last action: %w", err)
	}
	annotations[AnnotationLastAction] = string(record)
	return json.Marshal([]map[string]any{
		// Setting resourceVersion makes the API server apply the patch only to
		// that version, answering 409 Conflict otherwise.
		{"op": "replace", "path": "/metadata/resourceVersion", "value": d.ResourceVersion},
		{"op": "replace", "path": "/spec/template", "value": template},
		{"op": "replace", "path": "/metadata/annotations", "value": annotations},
	})
}

// watcherMark: the marks the watcher puts on ReplicaSets describe that
// ReplicaSet, not the Deployment, and are not copied onto it.
func watcherMark(k string) bool {
	return k == AnnotationKnownGood || k == AnnotationRolledBack || k == AnnotationLastAction || k == AnnotationRollbackIntent
}
