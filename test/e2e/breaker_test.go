package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The circuit breaker (more than 5 stalls within 5 minutes), scoped as the hostile test demanded: one team stalling
// six of its own Deployments pauses rollbacks in its namespace only; another namespace's typo is still rolled back;
// stalls across three namespaces pause the cluster. Dry-run stalls never count. The test runs its own watcher,
// limited to its Deployments by label, so that the breaker cannot hold up the other tests' rollbacks.
func TestRollbackCircuitBreakerIsScoped(t *testing.T) {
	t.Parallel()
	url, err := suite.cluster.StartWatcher(context.Background(), "rollout-guard-watcher-breaker", suite.binary, false,
		"--kubeconfig", suite.cluster.Kubeconfig, "--namespace", "rollout-guard",
		"--config", filepath.Join(suite.repo, "test", "e2e", "testdata", "breaker-config.yaml"),
		"--selector", "rollout-guard.io/e2e-watcher=breaker")
	if err != nil {
		t.Fatalf("start the breaker test's watcher: %v", err)
	}

	// Dry-run stalls first: six of them must not open anything.
	dry := namespace(t)
	stallApps(t, dry, 6, `rollout-guard.io/auto-rollback: "dryrun"`)
	eventually(t, 90*time.Second, "a dry-run Event for each stalled Deployment", func(context.Context) (bool, error) {
		seen := 0
		for i := range 6 {
			for _, e := range events(t, dry, fmt.Sprintf("app-%d", i), "RolloutGuardRollbackSkipped") {
				if strings.Contains(e.Note, "paused") {
					return false, fmt.Errorf("dry runs opened the breaker: %s", e.Note)
				}
				if strings.Contains(e.Note, "[dry run") {
					seen++
					break
				}
			}
		}
		return seen == 6, nil
	})

	tenant := namespace(t)
	stallApps(t, tenant, 6, "")
	rolledBack, paused := outcomes(t, tenant, 6, "RolloutGuardRolledBack", "automatic rollbacks are paused in namespace "+tenant)
	if len(paused) < 1 || rolledBack > 5 {
		t.Errorf("tenant: %d rolled back, %d paused; want at most 5 rollbacks and at least 1 pause", rolledBack, len(paused))
	}
	for _, note := range paused {
		if strings.Contains(note, "rolled back from") || !strings.Contains(note, "not rolled back") {
			t.Errorf("a paused rollback's Event must not say it rolled back: %s", note)
		}
	}

	other := namespace(t)
	stallApps(t, other, 1, "")
	if rolledBack, _ := outcomes(t, other, 1, "RolloutGuardRolledBack", "paused"); rolledBack != 1 {
		t.Errorf("another namespace's typo was not rolled back while the tenant's breaker was open")
	}
	if open := metric(t, url, "rollout_guard_circuit_breaker_open", nil); open != 0 {
		t.Errorf("rollout_guard_circuit_breaker_open = %v with stalls in two namespaces, want 0", open)
	}

	third := namespace(t)
	stallApps(t, third, 1, "")
	if _, paused := outcomes(t, third, 1, "RolloutGuardRolledBack", "automatic rollbacks are paused in the cluster"); len(paused) != 1 {
		t.Errorf("stalls in three namespaces did not pause the cluster")
	}
	if open := metric(t, url, "rollout_guard_circuit_breaker_open", nil); open != 1 {
		t.Errorf("rollout_guard_circuit_breaker_open = %v, want 1", open)
	}
}

// stallApps applies n good Deployments for the breaker's watcher, waits until each is known-good, then gives each
// an image that cannot be pulled. annotation, when set, goes on each Deployment.
func stallApps(t *testing.T, ns string, n int, annotation string) {
	t.Helper()
	annotations := ""
	if annotation != "" {
		annotations = "\n  annotations: {" + annotation + "}"
	}
	var manifests []string
	for i := range n {
		manifests = append(manifests, fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%d
  labels: {app: app-%d, rollout-guard.io/e2e-watcher: breaker}%s
spec:
  replicas: 1
  selector: {matchLabels: {app: app-%d}}
  template:
    metadata: {labels: {app: app-%d}}
    spec:
      containers: [{name: web, image: nginx:1.9.1, ports: [{containerPort: 80}]}]
`, i, i, annotations, i, i))
	}
	mustKubectl(t, strings.Join(manifests, "---\n"), "-n", ns, "apply", "-f", "-")
	for i := range n {
		waitAvailable(t, ns, fmt.Sprintf("app-%d", i), 60*time.Second)
		waitKnownGood(t, ns, fmt.Sprintf("app-%d", i))
	}
	for i := range n {
		mustKubectl(t, "", "-n", ns, "set", "image", fmt.Sprintf("deployment/app-%d", i), "web=nginx:1.161")
	}
}

// outcomes waits until each of the n Deployments has an Event with reason done, or a Skip whose note contains
// skipped, and returns how many had done and the notes of the skips.
func outcomes(t *testing.T, ns string, n int, done, skipped string) (int, []string) {
	t.Helper()
	var count int
	var notes []string
	eventually(t, 90*time.Second, fmt.Sprintf("every stalled Deployment in %s has %s or a Skip saying %q", ns, done, skipped), func(context.Context) (bool, error) {
		count, notes = 0, nil
		for i := range n {
			name := fmt.Sprintf("app-%d", i)
			count += min(1, len(events(t, ns, name, done)))
			for _, e := range events(t, ns, name, "RolloutGuardRollbackSkipped") {
				if strings.Contains(e.Note, skipped) {
					notes = append(notes, e.Note)
					break
				}
			}
		}
		return count+len(notes) == n, nil
	})
	return count, notes
}
