package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// workloadManifest is a StatefulSet or DaemonSet "app" running image, with a
// port so that rollout-guard's mutation can give it a readiness probe.
func workloadManifest(kind, image string) string {
	extra := ""
	if kind == "StatefulSet" {
		extra = "\n  replicas: 2\n  serviceName: app"
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: %s
metadata: {name: app, labels: {app: app}}
spec:%s
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      - {name: app, image: %q, ports: [{containerPort: 80}]}
`, kind, extra, image)
}

// waitRevisionKnownGood waits until the watcher has marked the workload's
// ControllerRevision with the highest number known-good.
func waitRevisionKnownGood(t *testing.T, ns string) {
	t.Helper()
	cs := clientset(t)
	eventually(t, 60*time.Second, "newest ControllerRevision marked known-good", func(ctx context.Context) (bool, error) {
		list, err := cs.AppsV1().ControllerRevisions(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=app"})
		if err != nil || len(list.Items) == 0 {
			return false, err
		}
		newest := list.Items[0]
		for _, cr := range list.Items {
			if cr.Revision > newest.Revision {
				newest = cr
			}
		}
		return newest.Annotations["rollout-guard.io/known-good"] != "", nil
	})
}

func waitWorkloadEvent(t *testing.T, ns, kind, reason, reasonDetail string, timeout time.Duration) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	eventually(t, timeout, kind+" Event "+reason+"/"+reasonDetail, func(context.Context) (bool, error) {
		for _, e := range workloadEvents(t, ns, kind, "app", reason) {
			if e.Action == reasonDetail {
				found = e
				return true, nil
			}
		}
		return false, nil
	})
	return found
}

// podImages maps the workload's pods to their images.
func podImages(t *testing.T, ns string) map[string]string {
	t.Helper()
	pods, err := clientset(t).CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=app"})
	if err != nil {
		t.Fatalf("list pods: %v", err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out[p.Name] = p.Spec.Containers[0].Image
		}
	}
	return out
}

func allImages(images map[string]string, want string, n int) bool {
	if len(images) != n {
		return false
	}
	for _, img := range images {
		if img != want {
			return false
		}
	}
	return true
}

// A DaemonSet whose new revision cannot pull its image is rolled back to the
// last known-good ControllerRevision, as `kubectl rollout undo` would.
func TestRollbackDaemonSet(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	cs := clientset(t)
	mustKubectl(t, workloadManifest("DaemonSet", "nginx:1.7.9"), "-n", ns, "apply", "-f", "-")
	waitRevisionKnownGood(t, ns)

	mustKubectl(t, "", "-n", ns, "set", "image", "daemonset/app", "app=nginx:1.161")
	ev := waitWorkloadEvent(t, ns, "DaemonSet", "RolloutGuardRolledBack", "Rollback", 60*time.Second)
	for _, want := range []string{"from revision 2 (nginx:1.161) to revision 1 (nginx:1.7.9)", "ImagePullBackOff"} {
		if !strings.Contains(ev.Note, want) {
			t.Errorf("event note %q does not say %q", ev.Note, want)
		}
	}
	var ds *appsv1.DaemonSet
	eventually(t, 60*time.Second, "DaemonSet back on nginx:1.7.9 and available", func(ctx context.Context) (bool, error) {
		var err error
		ds, err = cs.AppsV1().DaemonSets(ns).Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st := ds.Status
		return ds.Spec.Template.Spec.Containers[0].Image == "nginx:1.7.9" && st.ObservedGeneration == ds.Generation &&
			st.DesiredNumberScheduled > 0 && st.UpdatedNumberScheduled == st.DesiredNumberScheduled &&
			st.NumberAvailable == st.DesiredNumberScheduled && allImages(podImages(t, ns), "nginx:1.7.9", int(st.DesiredNumberScheduled)), nil
	})
	// As after a manual undo, the restored revision is renumbered as the newest.
	history := mustKubectl(t, "", "-n", ns, "rollout", "history", "daemonset/app")
	if !strings.Contains(history.stdout, "\n3 ") || strings.Contains(history.stdout, "\n1 ") {
		t.Errorf("rollout history after the rollback:\n%s", history.stdout)
	}
	if n := len(workloadEvents(t, ns, "DaemonSet", "app", "RolloutGuardRolledBack")); n != 1 {
		t.Errorf("%d RolledBack events, want 1", n)
	}
}

// A StatefulSet is rolled back and, since it would wait forever for its
// stuck pod to become Ready, that pod is deleted and recreated from the
// restored revision (a forced rollback).
func TestRollbackStatefulSet(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	cs := clientset(t)
	mustKubectl(t, workloadManifest("StatefulSet", "nginx:1.7.9"), "-n", ns, "apply", "-f", "-")
	waitRevisionKnownGood(t, ns)

	mustKubectl(t, "", "-n", ns, "set", "image", "statefulset/app", "app=nginx:1.161")
	ev := waitWorkloadEvent(t, ns, "StatefulSet", "RolloutGuardRolledBack", "Rollback", 60*time.Second)
	if !strings.Contains(ev.Note, "to revision 1 (nginx:1.7.9)") {
		t.Errorf("event note %q", ev.Note)
	}
	stuck := waitWorkloadEvent(t, ns, "StatefulSet", "RolloutGuardRolledBack", "DeleteStuckPods", 60*time.Second)
	if !strings.Contains(stuck.Note, "app-1") {
		t.Errorf("stuck-pod event note %q does not name app-1, the pod the update started with", stuck.Note)
	}
	eventually(t, 60*time.Second, "StatefulSet back on nginx:1.7.9 with every pod ready", func(ctx context.Context) (bool, error) {
		ss, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "app", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st := ss.Status
		return ss.Spec.Template.Spec.Containers[0].Image == "nginx:1.7.9" && st.ObservedGeneration == ss.Generation &&
			st.ReadyReplicas == 2 && st.UpdatedReplicas == 2 && st.CurrentRevision == st.UpdateRevision &&
			allImages(podImages(t, ns), "nginx:1.7.9", 2), nil
	})
	if n := len(workloadEvents(t, ns, "StatefulSet", "app", "RolloutGuardRolledBack")); n != 2 {
		t.Errorf("%d RolledBack events, want 2 (the rollback and the stuck pod)", n)
	}
}
