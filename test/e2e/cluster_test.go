package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The local cluster runs the real Deployment controller: a known image rolls out and turns Available.
func TestClusterKnownImageBecomesAvailable(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	mustKubectl(t, "", "-n", ns, "create", "deployment", "web", "--image=nginx:1.14.2", "--replicas=2", "--port=80")
	d := waitAvailable(t, ns, "web", 60*time.Second)
	if d.Status.ReadyReplicas != 2 {
		t.Fatalf("ready replicas = %d, want 2", d.Status.ReadyReplicas)
	}
}

// An image missing from the simulated registry never turns Ready, and the
// real Deployment controller reports ProgressDeadlineExceeded.
func TestClusterUnknownImageExceedsProgressDeadline(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	manifest := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: typo
spec:
  replicas: 1
  progressDeadlineSeconds: 10
  selector: {matchLabels: {app: typo}}
  template:
    metadata: {labels: {app: typo}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.161
        ports: [{containerPort: 80}]
`
	mustKubectl(t, manifest, "-n", ns, "apply", "-f", "-")
	cs := clientset(t)
	eventually(t, 60*time.Second, "ImagePullBackOff", func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=typo"})
		if err != nil || len(pods.Items) == 0 || len(pods.Items[0].Status.ContainerStatuses) == 0 {
			return false, err
		}
		w := pods.Items[0].Status.ContainerStatuses[0].State.Waiting
		return w != nil && w.Reason == "ImagePullBackOff", nil
	})
	eventually(t, 60*time.Second, "ProgressDeadlineExceeded", func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "typo", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		c := condition(d, appsv1.DeploymentProgressing)
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded", nil
	})
	if d := deployment(t, ns, "typo"); d.Status.AvailableReplicas != 0 {
		t.Fatalf("available replicas = %d, want 0", d.Status.AvailableReplicas)
	}
}

// Pods annotated to crash restart again and again; pods annotated never-ready run but stay unready.
func TestClusterSimulatedCrashAndNeverReady(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	pods := `apiVersion: v1
kind: Pod
metadata:
  name: crasher
  annotations: {sim.rollout-guard.io/crash: "true"}
spec:
  containers: [{name: app, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata:
  name: sleeper
  annotations: {sim.rollout-guard.io/never-ready: "true"}
spec:
  containers: [{name: app, image: redis}]
`
	mustKubectl(t, pods, "-n", ns, "apply", "-f", "-")
	cs := clientset(t)
	eventually(t, 60*time.Second, "crasher in CrashLoopBackOff with 2+ restarts", func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "crasher", metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) == 0 {
			return false, err
		}
		s := p.Status.ContainerStatuses[0]
		return s.State.Waiting != nil && s.State.Waiting.Reason == "CrashLoopBackOff" && s.RestartCount >= 2, nil
	})
	eventually(t, 30*time.Second, "sleeper running", func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "sleeper", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, err
	})
	// Give kwok time to (wrongly) turn it Ready before checking that it did not.
	time.Sleep(3 * time.Second)
	p, err := cs.CoreV1().Pods(ns).Get(context.Background(), "sleeper", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			t.Fatalf("never-ready pod turned Ready: %+v", p.Status)
		}
	}
	if s := p.Status.ContainerStatuses[0]; s.Ready || s.State.Running == nil {
		t.Fatalf("never-ready container: ready=%v running=%v, want running and unready", s.Ready, s.State.Running != nil)
	}
}

// From day one, kubectl apply of a Deployment passes through both webhooks.
func TestAdmissionRoundTrip(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	url := suite.cluster.Guard.WebhookMetricsURL
	mutating := metric(t, url, "rollout_guard_admission_requests_total", map[string]string{"webhook": "mutating", "operation": "CREATE"})
	validating := metric(t, url, "rollout_guard_admission_requests_total", map[string]string{"webhook": "validating", "operation": "CREATE"})
	r := mustKubectl(t, seed(t, "nginx-deployment.yaml"), "-n", ns, "apply", "-f", "-")
	if !strings.Contains(r.stderr, "Warning: rollout-guard:") {
		t.Errorf("kubectl apply printed no rollout-guard warning; stderr:\n%s", r.stderr)
	}
	if got := metric(t, url, "rollout_guard_admission_requests_total", map[string]string{"webhook": "mutating", "operation": "CREATE"}); got <= mutating {
		t.Errorf("mutating CREATE requests: %v before, %v after; the mutating webhook was not called", mutating, got)
	}
	if got := metric(t, url, "rollout_guard_admission_requests_total", map[string]string{"webhook": "validating", "operation": "CREATE"}); got <= validating {
		t.Errorf("validating CREATE requests: %v before, %v after; the validating webhook was not called", validating, got)
	}
}
