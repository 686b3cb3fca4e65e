package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

type wantDefaults struct {
	maxSurge, maxUnavailable     string
	progressDeadline, revHistory int32
	minReady                     int32
	probePort                    string
}

func checkDeployment(t *testing.T, d *appsv1.Deployment, w wantDefaults) {
	t.Helper()
	ru := d.Spec.Strategy.RollingUpdate
	if ru == nil || ru.MaxSurge.String() != w.maxSurge || ru.MaxUnavailable.String() != w.maxUnavailable {
		t.Errorf("%s: rollingUpdate = %+v, want maxSurge %s maxUnavailable %s", d.Name, ru, w.maxSurge, w.maxUnavailable)
	}
	if *d.Spec.ProgressDeadlineSeconds != w.progressDeadline || *d.Spec.RevisionHistoryLimit != w.revHistory || d.Spec.MinReadySeconds != w.minReady {
		t.Errorf("%s: progressDeadlineSeconds %d revisionHistoryLimit %d minReadySeconds %d, want %d %d %d", d.Name,
			*d.Spec.ProgressDeadlineSeconds, *d.Spec.RevisionHistoryLimit, d.Spec.MinReadySeconds, w.progressDeadline, w.revHistory, w.minReady)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		for name, p := range map[string]*corev1.Probe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
			if p == nil || p.TCPSocket == nil || p.TCPSocket.Port.String() != w.probePort {
				t.Errorf("%s: container %s %s = %+v, want tcpSocket :%s", d.Name, c.Name, name, p, w.probePort)
			}
		}
	}
}

// The seeds get exactly the expected defaults; what their authors wrote is kept.
func TestMutationSeedsGetDefaults(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	// The 50%/50% seed breaks the surge policy; this test is about mutation only.
	mustKubectl(t, "", "label", "namespace", ns, "rollout-guard.io/policies=disabled")
	tests := []struct {
		seed, name string
		want       wantDefaults
		warnings   []string
	}{
		{"nginx-deployment.yaml", "nginx-deployment", wantDefaults{"25%", "0", 120, 5, 5, "80"}, []string{
			"rollout-guard: set readinessProbe tcpSocket :80 on container nginx",
			"rollout-guard: set livenessProbe tcpSocket :80 on container nginx",
			"rollout-guard: set spec.strategy.rollingUpdate.maxUnavailable to 0",
			"rollout-guard: set spec.progressDeadlineSeconds to 120",
			"rollout-guard: set spec.revisionHistoryLimit to 5",
			"rollout-guard: set spec.minReadySeconds to 5",
		}},
		{"tomcat-deployment.yaml", "tomcat", wantDefaults{"25%", "1", 120, 5, 5, "http"}, []string{"set readinessProbe tcpSocket :http on container tomcat"}},
		{"httpd-deployment.yaml", "httpd", wantDefaults{"25%", "0", 120, 10, 5, "80"}, nil},
		{"surge-app.yaml", "surge-app", wantDefaults{"50%", "50%", 120, 5, 5, "80"}, nil},
	}
	for _, tt := range tests {
		r := mustKubectl(t, seed(t, tt.seed), "-n", ns, "apply", "-f", "-")
		for _, w := range tt.warnings {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: kubectl printed no warning %q", tt.seed, w)
			}
		}
		checkDeployment(t, deployment(t, ns, tt.name), tt.want)
	}
	// httpd wrote revisionHistoryLimit: 10, equal to the API default, so it must not be touched nor mentioned.
	r := mustKubectl(t, "", "-n", ns, "get", "deployment", "httpd", "-o", "jsonpath={.spec.revisionHistoryLimit}")
	if r.stdout != "10" {
		t.Errorf("httpd revisionHistoryLimit = %s, want the user's 10", r.stdout)
	}
}

// kubectl apply, diff and apply again: no difference, no new generation, client-side and server-side.
func TestMutationIsTransparentToApplyAndDiff(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name  string
		flags []string
	}{{"client-side", nil}, {"server-side", []string{"--server-side"}}} {
		t.Run(mode.name, func(t *testing.T) {
			ns := namespace(t)
			manifest := seed(t, "nginx-deployment.yaml")
			apply := append([]string{"-n", ns, "apply", "-f", "-"}, mode.flags...)
			mustKubectl(t, manifest, apply...)
			before := deployment(t, ns, "nginx-deployment")
			checkDeployment(t, before, wantDefaults{"25%", "0", 120, 5, 5, "80"})
			diff := kubectl(t, manifest, append([]string{"-n", ns, "diff", "-f", "-"}, mode.flags...)...)
			if diff.err != nil || diff.stdout != "" {
				t.Errorf("kubectl diff after apply: err %v, output:\n%s", diff.err, diff.stdout)
			}
			r := mustKubectl(t, manifest, apply...)
			after := deployment(t, ns, "nginx-deployment")
			if after.Generation != before.Generation {
				t.Errorf("re-apply bumped generation %d -> %d", before.Generation, after.Generation)
			}
			if strings.Contains(r.stderr, "rollout-guard: set") {
				t.Errorf("re-apply reported mutations again:\n%s", r.stderr)
			}
		})
	}
}

// A server-side dry run gets the same mutation and counts nothing. Not
// parallel: Go runs sequential tests before it releases the parallel ones,
// so no other test moves the counters meanwhile.
func TestMutationDryRunHasNoSideEffects(t *testing.T) {
	ns := namespace(t)
	url := suite.cluster.Guard.WebhookMetricsURL
	labels := map[string]string{"kind": "Deployment", "field": "readinessProbe"}
	before := metric(t, url, "rollout_guard_mutations_total", labels)
	r := mustKubectl(t, seed(t, "nginx-deployment.yaml"), "-n", ns, "apply", "--dry-run=server", "-o", "json", "-f", "-")
	var d appsv1.Deployment
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("decode dry-run output: %v", err)
	}
	checkDeployment(t, &d, wantDefaults{"25%", "0", 120, 5, 5, "80"})
	if !strings.Contains(r.stderr, "rollout-guard: set readinessProbe") {
		t.Errorf("the dry run printed no mutation warnings:\n%s", r.stderr)
	}
	if _, err := clientset(t).AppsV1().Deployments(ns).Get(context.Background(), "nginx-deployment", metav1.GetOptions{}); err == nil {
		t.Error("dry run created the Deployment")
	}
	if after := metric(t, url, "rollout_guard_mutations_total", labels); after != before {
		t.Errorf("rollout_guard_mutations_total moved on a dry run: %v -> %v", before, after)
	}
	// The same apply for real does count: the metric is live, so the check above means something.
	mustKubectl(t, seed(t, "nginx-deployment.yaml"), "-n", ns, "apply", "-f", "-")
	if after := metric(t, url, "rollout_guard_mutations_total", labels); after != before+1 {
		t.Errorf("rollout_guard_mutations_total after a real apply: %v -> %v, want +1", before, after)
	}
}

// kubectl rollout undo re-adopts the previous ReplicaSet: no new ReplicaSet,
// even when the restored template lacks a probe rollout-guard would add today.
func TestMutationLeavesRolloutUndoAlone(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	// Revision 1 is made while the namespace turns liveness probes off, so its template has none.
	mustKubectl(t, "", "annotate", "namespace", ns, "rollout-guard.io/liveness-probe=false")
	eventually(t, 10*time.Second, "namespace annotation seen by the webhook", func(ctx context.Context) (bool, error) {
		r := kubectl(t, seed(t, "nginx-deployment.yaml"), "-n", ns, "apply", "--dry-run=server", "-o", "jsonpath={.spec.template.spec.containers[0].livenessProbe}", "-f", "-")
		return r.err == nil && r.stdout == "", nil
	})
	mustKubectl(t, seed(t, "nginx-deployment.yaml"), "-n", ns, "apply", "-f", "-")
	waitAvailable(t, ns, "nginx-deployment", 60*time.Second)
	if p := deployment(t, ns, "nginx-deployment").Spec.Template.Spec.Containers[0].LivenessProbe; p != nil {
		t.Fatalf("revision 1 got a livenessProbe: %+v", p)
	}
	// Revision 2: liveness probes back on, new image: the new template gets one.
	mustKubectl(t, "", "annotate", "namespace", ns, "rollout-guard.io/liveness-probe-")
	eventually(t, 10*time.Second, "namespace annotation removal seen by the webhook", func(ctx context.Context) (bool, error) {
		r := kubectl(t, seed(t, "nginx-deployment.yaml"), "-n", ns, "apply", "--dry-run=server", "-o", "jsonpath={.spec.template.spec.containers[0].livenessProbe}", "-f", "-")
		return r.err == nil && r.stdout == "", nil
	})
	mustKubectl(t, "", "-n", ns, "set", "image", "deployment/nginx-deployment", "nginx=nginx:1.9.1")
	waitAvailable(t, ns, "nginx-deployment", 90*time.Second)
	if p := deployment(t, ns, "nginx-deployment").Spec.Template.Spec.Containers[0].LivenessProbe; p == nil {
		t.Fatal("revision 2 got no livenessProbe")
	}
	if sets := replicaSets(t, ns, "app=nginx"); len(sets) != 2 {
		t.Fatalf("%d ReplicaSets before undo, want 2", len(sets))
	}
	r := mustKubectl(t, "", "-n", ns, "rollout", "undo", "deployment/nginx-deployment")
	if !strings.Contains(r.stderr, "restores an earlier revision") {
		t.Errorf("undo printed no note about the restored template:\n%s", r.stderr)
	}
	d := waitAvailable(t, ns, "nginx-deployment", 90*time.Second)
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "nginx:1.7.9" {
		t.Errorf("image after undo = %s, want nginx:1.7.9", img)
	}
	if p := d.Spec.Template.Spec.Containers[0].LivenessProbe; p != nil {
		t.Errorf("restored template was altered: livenessProbe %+v", p)
	}
	after := replicaSets(t, ns, "app=nginx")
	if len(after) != 2 {
		t.Errorf("%d ReplicaSets after undo, want the same 2 (undo must re-adopt, not create)", len(after))
	}
	for _, rs := range after {
		if rs.Spec.Template.Spec.Containers[0].Image == "nginx:1.7.9" && (rs.Spec.Replicas == nil || *rs.Spec.Replicas != 3) {
			t.Errorf("the nginx:1.7.9 ReplicaSet %s was not scaled back up: %v", rs.Name, rs.Spec.Replicas)
		}
	}
}

// The same for a DaemonSet: kubectl rollout undo restores a ControllerRevision,
// which the DaemonSet re-adopts only if the webhook leaves the template alone.
func TestMutationLeavesDaemonSetUndoAlone(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	cs := clientset(t)
	livenessOf := func() *corev1.Probe {
		ds, err := cs.AppsV1().DaemonSets(ns).Get(context.Background(), "app", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get DaemonSet: %v", err)
		}
		return ds.Spec.Template.Spec.Containers[0].LivenessProbe
	}
	mustKubectl(t, "", "annotate", "namespace", ns, "rollout-guard.io/liveness-probe=false")
	eventually(t, 10*time.Second, "namespace annotation seen by the webhook", func(ctx context.Context) (bool, error) {
		r := kubectl(t, workloadManifest("DaemonSet", "nginx:1.7.9"), "-n", ns, "apply", "--dry-run=server", "-o", "jsonpath={.spec.template.spec.containers[0].livenessProbe}", "-f", "-")
		return r.err == nil && r.stdout == "", nil
	})
	mustKubectl(t, workloadManifest("DaemonSet", "nginx:1.7.9"), "-n", ns, "apply", "-f", "-")
	if p := livenessOf(); p != nil {
		t.Fatalf("revision 1 got a livenessProbe: %+v", p)
	}
	mustKubectl(t, "", "annotate", "namespace", ns, "rollout-guard.io/liveness-probe-")
	// A dry-run create shows the defaults in force (an update of an unchanged template is left alone).
	eventually(t, 10*time.Second, "namespace annotation removal seen by the webhook", func(ctx context.Context) (bool, error) {
		other := strings.Replace(workloadManifest("DaemonSet", "nginx:1.7.9"), "name: app,", "name: other,", 1)
		r := kubectl(t, other, "-n", ns, "apply", "--dry-run=server", "-o", "jsonpath={.spec.template.spec.containers[0].livenessProbe}", "-f", "-")
		return r.err == nil && r.stdout != "", nil
	})
	mustKubectl(t, "", "-n", ns, "set", "image", "daemonset/app", "app=nginx:1.9.1")
	if p := livenessOf(); p == nil {
		t.Fatal("revision 2 got no livenessProbe")
	}
	revisions := func() int {
		list, err := cs.AppsV1().ControllerRevisions(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app=app"})
		if err != nil {
			t.Fatalf("list ControllerRevisions: %v", err)
		}
		return len(list.Items)
	}
	eventually(t, 30*time.Second, "2 ControllerRevisions", func(context.Context) (bool, error) { return revisions() == 2, nil })
	r := mustKubectl(t, "", "-n", ns, "rollout", "undo", "daemonset/app")
	if !strings.Contains(r.stderr, "restores an earlier revision") {
		t.Errorf("undo printed no note about the restored template:\n%s", r.stderr)
	}
	if p := livenessOf(); p != nil {
		t.Errorf("restored template was altered: livenessProbe %+v", p)
	}
	time.Sleep(2 * time.Second) // let the DaemonSet controller record its revisions
	if n := revisions(); n != 2 {
		t.Errorf("%d ControllerRevisions after undo, want the same 2 (undo must re-adopt, not create)", n)
	}
}

func replicaSets(t *testing.T, ns, selector string) []appsv1.ReplicaSet {
	t.Helper()
	list, err := clientset(t).AppsV1().ReplicaSets(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatalf("list ReplicaSets: %v", err)
	}
	return list.Items
}

// StatefulSets and DaemonSets get their own defaults.
func TestMutationStatefulSetAndDaemonSet(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	manifest := `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: redis, image: redis, ports: [{containerPort: 6379}]}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: busybox, ports: [{name: metrics, containerPort: 9100}]}]
`
	mustKubectl(t, manifest, "-n", ns, "apply", "-f", "-")
	cs := clientset(t)
	sts, err := cs.AppsV1().StatefulSets(ns).Get(context.Background(), "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := sts.Spec.Template.Spec.Containers[0].ReadinessProbe; p == nil || p.TCPSocket.Port != intstr.FromInt32(6379) {
		t.Errorf("StatefulSet readinessProbe = %+v", p)
	}
	if *sts.Spec.RevisionHistoryLimit != 5 || sts.Spec.MinReadySeconds != 5 {
		t.Errorf("StatefulSet revisionHistoryLimit %d minReadySeconds %d, want 5 5", *sts.Spec.RevisionHistoryLimit, sts.Spec.MinReadySeconds)
	}
	ds, err := cs.AppsV1().DaemonSets(ns).Get(context.Background(), "agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p := ds.Spec.Template.Spec.Containers[0].ReadinessProbe; p == nil || p.TCPSocket.Port != intstr.FromString("metrics") {
		t.Errorf("DaemonSet readinessProbe = %+v", p)
	}
	ru := ds.Spec.UpdateStrategy.RollingUpdate
	if ru.MaxSurge.String() != "25%" || ru.MaxUnavailable.String() != "0" || *ds.Spec.RevisionHistoryLimit != 5 {
		t.Errorf("DaemonSet rollingUpdate %+v revisionHistoryLimit %d", ru, *ds.Spec.RevisionHistoryLimit)
	}
	diff := kubectl(t, manifest, "-n", ns, "diff", "-f", "-")
	if diff.err != nil || diff.stdout != "" {
		t.Errorf("kubectl diff after apply: err %v\n%s", diff.err, diff.stdout)
	}
}

// Skipped namespaces and opted-out objects are left exactly as written.
func TestMutationSkipsNamespacesAndOptOuts(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	name := "untouched-" + ns[len(ns)-6:]
	manifest := strings.Replace(seed(t, "nginx-deployment.yaml"), "name: nginx-deployment", "name: "+name, 1)
	r := mustKubectl(t, manifest, "-n", "kube-public", "apply", "-f", "-")
	t.Cleanup(func() { kubectl(t, "", "-n", "kube-public", "delete", "deployment", name) })
	if strings.Contains(r.stderr, "rollout-guard") {
		t.Errorf("kube-public object mutated:\n%s", r.stderr)
	}
	// Without mutation the object has no readinessProbe, which probes-required would deny; this test is about mutation.
	mustKubectl(t, "", "label", "namespace", ns, "rollout-guard.io/policies=disabled")
	optedOut := strings.Replace(manifest, "  labels:\n    app: nginx\nspec:", "  labels:\n    app: nginx\n  annotations:\n    rollout-guard.io/mutate: \"false\"\nspec:", 1)
	mustKubectl(t, optedOut, "-n", ns, "apply", "-f", "-")
	for _, where := range []string{"kube-public", ns} {
		d := deployment(t, where, name)
		if d.Spec.Template.Spec.Containers[0].ReadinessProbe != nil || *d.Spec.ProgressDeadlineSeconds != 600 || *d.Spec.RevisionHistoryLimit != 10 || d.Spec.MinReadySeconds != 0 {
			t.Errorf("%s/%s was mutated: %+v", where, name, d.Spec)
		}
	}
}
