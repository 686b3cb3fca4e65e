package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// 200 kubectl applies, with a webhook pod deleted at the 60th: every apply is admitted and every object mutated. The
// webhooks fail open, so a request lost while the pod goes away would not fail the apply: it would silently skip the
// defaults, which is what the mutation check catches.
func TestApplyLoopSurvivesWebhookPodLoss(t *testing.T) {
	ns := namespace(t, "apply-loop")
	const applies, killAt = 200, 60
	var failed []string
	var deleted sync.WaitGroup
	start := time.Now()
	for i := range applies {
		if i == killAt {
			victim := kubectl(t, "-n", "rollout-guard", "get", "pods", "-l", "app.kubernetes.io/component=webhook",
				"-o", "jsonpath={.items[0].metadata.name}")
			deleted.Add(1)
			go func() {
				defer deleted.Done()
				// the default grace period, as a node drain or a rollout would
				if _, err := suite.cluster.Kubectl(t.Context(), "-n", "rollout-guard", "delete", "pod", victim); err != nil {
					t.Errorf("delete webhook pod %s: %v", victim, err)
				}
			}()
			t.Logf("deleting webhook pod %s at apply %d", victim, i)
		}
		if _, err := applyErr(t, ns, loopDeployment("loop", i)); err != nil {
			failed = append(failed, fmt.Sprintf("apply %d: %v", i, err))
		}
	}
	deleted.Wait()
	t.Logf("%d applies in %s", applies, time.Since(start).Round(time.Millisecond))
	checkLoop(t, ns, failed, applies)
}

// loopDeployment is the i-th Deployment of an apply loop. Replicas 0: a loop is about admission, not about starting
// hundreds of pods.
func loopDeployment(prefix string, i int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s-%03[2]d}
spec:
  replicas: 0
  selector: {matchLabels: {app: %[1]s-%03[2]d}}
  template:
    metadata: {labels: {app: %[1]s-%03[2]d}}
    spec:
      containers: [{name: web, image: "nginx:1.7.9", ports: [{containerPort: 80}]}]
`, prefix, i)
}

// checkLoop fails the test when an apply of a loop failed, and reports every Deployment of ns stored without the
// mutating webhook: the webhooks fail open, so a request lost would not fail its apply, only skip the defaults.
func checkLoop(t *testing.T, ns string, failed []string, applies int) {
	t.Helper()
	if len(failed) > 0 {
		t.Fatalf("%d of %d applies failed:\n%s", len(failed), applies, strings.Join(failed, "\n"))
	}
	probes := strings.Fields(kubectl(t, "-n", ns, "get", "deployments", "-o",
		`jsonpath={range .items[*]}{.metadata.name}={.spec.template.spec.containers[0].readinessProbe.tcpSocket.port}{" "}{end}`))
	if len(probes) != applies {
		t.Fatalf("%d Deployments stored, want %d", len(probes), applies)
	}
	var unmutated []string
	for _, p := range probes {
		if !strings.HasSuffix(p, "=80") {
			unmutated = append(unmutated, strings.SplitN(p, "=", 2)[0])
		}
	}
	if len(unmutated) > 0 {
		t.Errorf("%d of %d Deployments were admitted without the mutating webhook (no readiness probe): %v",
			len(unmutated), applies, unmutated)
	}
}
