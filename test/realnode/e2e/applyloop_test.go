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
		// replicas 0: the loop is about admission, not about starting 200 pods
		manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: loop-%03d}
spec:
  replicas: 0
  selector: {matchLabels: {app: loop-%03d}}
  template:
    metadata: {labels: {app: loop-%03d}}
    spec:
      containers: [{name: web, image: "nginx:1.7.9", ports: [{containerPort: 80}]}]
`, i, i, i)
		if _, err := applyErr(t, ns, manifest); err != nil {
			failed = append(failed, fmt.Sprintf("apply %d: %v", i, err))
		}
	}
	deleted.Wait()
	t.Logf("%d applies in %s", applies, time.Since(start).Round(time.Millisecond))
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
