package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Six Deployments stalling at once trip the circuit breaker (more than 5
// within 5 minutes): the watcher stops rolling back and says why. The test
// runs its own watcher, limited to its Deployments by label, so that the
// open breaker cannot hold up the other tests' rollbacks.
func TestRollbackCircuitBreakerTrips(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	url, err := suite.cluster.StartWatcher(context.Background(), "rollout-guard-watcher-breaker", suite.binary, false,
		"--kubeconfig", suite.cluster.Kubeconfig, "--namespace", "rollout-guard",
		"--config", filepath.Join(suite.repo, "test", "e2e", "testdata", "breaker-config.yaml"),
		"--selector", "rollout-guard.io/e2e-watcher=breaker")
	if err != nil {
		t.Fatalf("start the breaker test's watcher: %v", err)
	}
	const n = 6
	var manifests []string
	for i := range n {
		manifests = append(manifests, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%d
  labels: {app: app-%d, rollout-guard.io/e2e-watcher: breaker}
spec:
  replicas: 1
  selector: {matchLabels: {app: app-%d}}
  template:
    metadata: {labels: {app: app-%d}}
    spec:
      containers: [{name: web, image: nginx:1.9.1, ports: [{containerPort: 80}]}]
`, i, i, i, i))
	}
	mustKubectl(t, strings.Join(manifests, "---\n"), "-n", ns, "apply", "-f", "-")
	for i := range n {
		waitAvailable(t, ns, fmt.Sprintf("app-%d", i), 60*time.Second)
		waitKnownGood(t, ns, fmt.Sprintf("app-%d", i))
	}
	for i := range n {
		mustKubectl(t, "", "-n", ns, "set", "image", fmt.Sprintf("deployment/app-%d", i), "web=nginx:1.161")
	}
	rolledBack, skipped := 0, 0
	eventually(t, 90*time.Second, "every stalled Deployment rolled back or skipped", func(context.Context) (bool, error) {
		rolledBack, skipped = 0, 0
		for i := range n {
			name := fmt.Sprintf("app-%d", i)
			rolledBack += len(events(t, ns, name, "RolloutGuardRolledBack"))
			for _, e := range events(t, ns, name, "RolloutGuardRollbackSkipped") {
				if strings.Contains(e.Note, "automatic rollbacks are paused") {
					skipped++
				}
			}
		}
		return rolledBack+skipped == n, nil
	})
	if skipped < 1 || rolledBack > 5 {
		t.Errorf("%d rolled back, %d skipped by the breaker; want at most 5 rollbacks and at least 1 skip", rolledBack, skipped)
	}
	if open := metric(t, url, "rollout_guard_circuit_breaker_open", nil); open != 1 {
		t.Errorf("rollout_guard_circuit_breaker_open = %v, want 1", open)
	}
}
