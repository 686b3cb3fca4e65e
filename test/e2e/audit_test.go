package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/rollout-guard/rollout-guard/audit"
	"github.com/rollout-guard/rollout-guard/policies/check"
)

// auditPeriod is the e2e config's audit.interval; a report is due within it, and the time one audit takes.
const auditPeriod = 10 * time.Second

// A policy added after a workload was admitted: rollout-guard audit finds the workload already running that it
// would deny today, only in the namespaces the policy's namespaceSelector selects, and stops finding it once the
// workload is fixed. The watcher's audit writes the same into each namespace's PolicyReport, within one period.
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
	cli := func(ns string, args ...string) (string, int) {
		out, err := exec.Command(suite.binary, append([]string{"audit", "--kubeconfig", suite.cluster.Kubeconfig, "-n", ns}, args...)...).Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("rollout-guard audit: %v", err)
		}
		t.Logf("rollout-guard audit -n %s %v (exit %d):\n%s", ns, args, code, out)
		return string(out), code
	}
	if out, code := cli(selected); code != 1 || !strings.Contains(out, selected+" Deployment/web: DENIED") ||
		!strings.Contains(out, "["+policy+"] metadata.labels.team is required") {
		t.Errorf("audit of the selected namespace: exit %d, want 1 naming web and the policy", code)
	}
	// The cluster's report, within one period (the new policy starts an audit at once), says what the CLI says.
	reportAgrees(t, selected, func(r audit.Report) bool { return r.Summary.Fail == 1 })
	if r := reportAgrees(t, other, func(audit.Report) bool { return true }); hasPolicy(r, policy) {
		t.Errorf("the report of %s, which the policy does not select, lists it", other)
	}
	if r := report(t, selected); !hasResult(r, "fail", "Deployment", "web", policy, "metadata.labels.team is required") {
		t.Errorf("the report of %s does not list web failing %s: %+v", selected, policy, r.Results)
	}
	if out, code := cli(other); code != 0 || strings.Contains(out, policy) {
		t.Errorf("audit of a namespace the policy does not select: exit %d, want 0 and no %s", code, policy)
	}
	mustKubectl(t, "", "-n", selected, "label", "deployment", "web", "team=shop")
	if out, code := cli(selected); code != 0 || strings.Contains(out, "DENIED") {
		t.Errorf("audit after the fix: exit %d, want 0", code)
	}
	// Nothing about policies changed: the periodic audit clears the result.
	fixed := time.Now()
	if r := reportAgrees(t, selected, func(r audit.Report) bool { return r.Summary.Fail == 0 }); hasPolicy(r, policy) {
		t.Errorf("the report still lists %s after the fix: %+v", policy, r.Results)
	}
	t.Logf("the report cleared %s after the fix (audit period %s)", time.Since(fixed).Round(time.Second), auditPeriod)
	// The cluster agrees: an unlabelled Deployment in the selected namespace is denied at admission.
	if r := kubectl(t, "", "-n", selected, "create", "deployment", "web2", "--image=nginx:1.7.9", "--port=80", "--dry-run=server"); r.err == nil ||
		!strings.Contains(r.stderr, policy) {
		t.Errorf("the cluster admitted what audit denies: %v %s", r.err, r.stderr)
	}
}

// report reads the PolicyReport rollout-guard keeps in ns.
func report(t *testing.T, ns string) audit.Report {
	t.Helper()
	var r audit.Report
	out := mustKubectl(t, "", "-n", ns, "get", "policyreports.wgpolicyk8s.io", audit.ReportName, "-o", "json")
	if err := json.Unmarshal([]byte(out.stdout), &r); err != nil {
		t.Fatalf("PolicyReport of %s: %v", ns, err)
	}
	return r
}

// reportAgrees waits, two audit periods at most, until ns's PolicyReport satisfies ready and lists exactly the
// findings `rollout-guard audit -o json` prints for ns, and returns it. It polls quietly, once a second, and logs
// what it saw last.
func reportAgrees(t *testing.T, ns string, ready func(audit.Report) bool) audit.Report {
	t.Helper()
	var r audit.Report
	var got, want []string
	var lastErr error
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 2*auditPeriod+5*time.Second, true, func(ctx context.Context) (bool, error) {
		out, err := exec.CommandContext(ctx, suite.kubectl, "--kubeconfig", suite.cluster.Kubeconfig, "-n", ns,
			"get", "policyreports.wgpolicyk8s.io", audit.ReportName, "-o", "json").Output()
		if lastErr = err; err != nil {
			return false, nil
		}
		r = audit.Report{}
		if err := json.Unmarshal(out, &r); err != nil {
			return false, err
		}
		got = nil
		for _, e := range r.Results {
			got = append(got, fmt.Sprintf("%s %s/%s %s: %s", e.Result, e.Resources[0].Kind, e.Resources[0].Name, e.Policy, e.Message))
		}
		// exit 1 (a workload would be denied) is an answer, not an error
		out, _ = exec.CommandContext(ctx, suite.binary, "audit", "--kubeconfig", suite.cluster.Kubeconfig, "-n", ns, "-o", "json").Output()
		var printed struct {
			Findings []check.Finding `json:"findings"`
		}
		if lastErr = json.Unmarshal(out, &printed); lastErr != nil {
			return false, nil
		}
		want = nil
		for _, f := range printed.Findings {
			for _, v := range f.Violations {
				verdict := map[bool]string{true: "fail", false: "warn"}[v.Enforcement == "deny"]
				want = append(want, fmt.Sprintf("%s %s/%s %s: %s", verdict, f.Kind, f.Name, v.Policy, v.Message))
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		return ready(r) && slices.Equal(got, want), nil
	})
	t.Logf("PolicyReport of %s: summary %+v, results %q; rollout-guard audit: %q", ns, r.Summary, got, want)
	if err != nil {
		t.Fatalf("the PolicyReport of %s did not come to agree with rollout-guard audit within %s (last error %v)", ns, 2*auditPeriod+5*time.Second, lastErr)
	}
	return r
}

func hasPolicy(r audit.Report, policy string) bool {
	return slices.ContainsFunc(r.Results, func(e audit.Entry) bool { return e.Policy == policy })
}

func hasResult(r audit.Report, result, kind, name, policy, message string) bool {
	return slices.ContainsFunc(r.Results, func(e audit.Entry) bool {
		return e.Result == result && e.Policy == policy && e.Message == message && len(e.Resources) == 1 &&
			e.Resources[0].Kind == kind && e.Resources[0].Name == name && e.Resources[0].UID != ""
	})
}
