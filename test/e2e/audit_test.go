package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A policy added after a workload was admitted: rollout-guard audit finds the workload already running that it
// would deny today, only in the namespaces the policy's namespaceSelector selects, and stops finding it once the
// workload is fixed.
func TestAuditFindsRunningViolations(t *testing.T) {
	t.Parallel()
	selected, other := namespace(t), namespace(t)
	for _, ns := range []string{selected, other} {
		mustKubectl(t, "", "-n", ns, "create", "deployment", "web", "--image=nginx:1.7.9", "--port=80")
		waitAvailable(t, ns, "web", time.Minute)
	}
	policy := "e2e-audit-" + selected[len(selected)-6:]
	mustKubectl(t, fmt.Sprintf(`apiVersion: rollout-guard.io/v1alpha1
kind: RolloutPolicy
metadata: {name: %s}
spec:
  match:
    namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: %s}}
  rego: |
    package rollout_guard.%s

    deny contains "metadata.labels.team is required" if { not input.object.metadata.labels.team }
`, policy, selected, strings.ReplaceAll(policy, "-", "_")), "apply", "-f", "-")
	t.Cleanup(func() { kubectl(t, "", "delete", "rolloutpolicy", policy) })
	eventually(t, 30*time.Second, "the RolloutPolicy is enforced", func(ctx context.Context) (bool, error) {
		r := kubectl(t, "", "get", "rolloutpolicy", policy, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status}`)
		return strings.TrimSpace(r.stdout) == "True", nil
	})
	audit := func(ns string) (string, int) {
		out, err := exec.Command(suite.binary, "audit", "--kubeconfig", suite.cluster.Kubeconfig, "-n", ns).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("rollout-guard audit: %v", err)
		}
		t.Logf("rollout-guard audit -n %s (exit %d):\n%s", ns, code, out)
		return string(out), code
	}
	if out, code := audit(selected); code != 1 || !strings.Contains(out, selected+" Deployment/web: DENIED") ||
		!strings.Contains(out, "["+policy+"] metadata.labels.team is required") {
		t.Errorf("audit of the selected namespace: exit %d, want 1 naming web and the policy", code)
	}
	if out, code := audit(other); code != 0 || strings.Contains(out, policy) {
		t.Errorf("audit of a namespace the policy does not select: exit %d, want 0 and no %s", code, policy)
	}
	mustKubectl(t, "", "-n", selected, "label", "deployment", "web", "team=shop")
	if out, code := audit(selected); code != 0 || strings.Contains(out, "DENIED") {
		t.Errorf("audit after the fix: exit %d, want 0", code)
	}
	// The cluster agrees: an unlabelled Deployment in the selected namespace is denied at admission.
	if r := kubectl(t, "", "-n", selected, "create", "deployment", "web2", "--image=nginx:1.7.9", "--port=80", "--dry-run=server"); r.err == nil ||
		!strings.Contains(r.stderr, policy) {
		t.Errorf("the cluster admitted what audit denies: %v %s", r.err, r.stderr)
	}
}
