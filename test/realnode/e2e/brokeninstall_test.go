package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A value the chart's schema cannot see as wrong, but rollout-guard refuses at start (a revisionHistoryLimit of 0
// for the defaults it injects), makes `helm install --wait` fail, instead of a release that says "deployed" while
// failurePolicy Ignore leaves the cluster unguarded. The broken release's webhooks select no namespace, and it brings
// no CRDs, so that the rest of the suite does not notice it.
func TestBrokenInstallFailsHelmWait(t *testing.T) {
	ctx := context.Background()
	c := suite.cluster
	home := filepath.Join(c.Dir, "helm")
	const name, ns = "rg-broken", "rg-broken"
	t.Cleanup(func() {
		if out, err := c.Helm(context.Background(), home, "uninstall", name, "--namespace", ns, "--wait", "--timeout", "2m"); err != nil {
			t.Errorf("uninstall the broken release: %v\n%s", err, out)
		}
		kubectl(t, "delete", "namespace", ns, "--ignore-not-found", "--wait=false")
	})
	began := time.Now()
	out, err := c.Helm(ctx, home, "install", name, suite.release.Chart, "--version", suite.release.Version, "--plain-http",
		"--namespace", ns, "--create-namespace", "--wait", "--timeout", "60s",
		"--set", "certManager.enabled=false", "--set", "crds.install=false", "--set", "replicaSetGuard.enabled=false",
		"--set", "analysis.builtIns.enabled=false", "--set", "webhook.replicas=1", "--set", "watcher.replicas=1",
		"--set", "webhook.podDisruptionBudget.minAvailable=0",
		"--set-json", `webhook.namespaceSelector={"matchLabels":{"rollout-guard.io/e2e":"never"}}`,
		"--set", "config.mutation.defaults.strategy.revisionHistoryLimit=0")
	if err == nil {
		t.Fatalf("helm install --wait of a release whose pods refuse their config succeeded:\n%s", out)
	}
	t.Logf("helm install --wait failed after %s, as it must: %s", time.Since(began).Round(time.Second), lastLine(out))
	if status := kubectl(t, "get", "secret", "-n", ns, "-l", "owner=helm,name="+name, "-o", "jsonpath={.items[*].metadata.labels.status}"); status != "failed" {
		t.Errorf("helm records the release as %q, want failed", status)
	}
	logs := kubectl(t, "-n", ns, "logs", "-l", "app.kubernetes.io/component=webhook", "--tail", "20")
	if !strings.Contains(logs, "mutation.defaults.strategy.revisionHistoryLimit") {
		t.Errorf("the webhook pod's log does not name the field it refused:\n%s", logs)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
