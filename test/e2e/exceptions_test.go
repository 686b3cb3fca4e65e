package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// exceptionGranter applies the chart's exception-granter and view ClusterRoles under a release of its own and
// returns the granter's name.
func exceptionGranter(t *testing.T) string {
	t.Helper()
	release := fmt.Sprintf("rpe-%d", time.Now().UnixNano()%1e6)
	rendered, err := helm(t, "template", release, chartDir(), "--namespace", "rollout-guard", "--api-versions", "cert-manager.io/v1", "--show-only", "templates/rbac.yaml")
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	granter := release + "-rollout-guard-exception-granter"
	var applied []string
	for _, doc := range documents(t, rendered, "ClusterRole") {
		if s := string(doc); strings.Contains(s, "name: "+granter+"\n") || strings.Contains(s, "name: "+release+"-rollout-guard-view\n") {
			if strings.Contains(s, "aggregate-to-edit") || strings.Contains(s, "aggregate-to-admin") {
				t.Errorf("the chart aggregates exception rights into edit or admin:\n%s", s)
			}
			mustKubectl(t, s, "apply", "-f", "-")
			applied = append(applied, s)
		}
	}
	if len(applied) != 2 {
		t.Fatalf("the chart renders %d of the exception-granter and view ClusterRoles, want 2:\n%s", len(applied), rendered)
	}
	t.Cleanup(func() {
		for _, s := range applied {
			kubectl(t, s, "delete", "-f", "-")
		}
	})
	return granter
}

func exception(name, policies, names, expires string) string {
	return fmt.Sprintf(`apiVersion: rollout-guard.io/v1alpha1
kind: RolloutPolicyException
metadata:
  name: %s
spec:
  policies: [%s]
  workloads: {names: [%s]}
  reason: nightly batch, downtime accepted by the owners
  expires: %q
`, name, policies, names, expires)
}

// Exceptions are granted under RBAC, not by the workload's editor: an editor cannot create one and their own
// annotations waive nothing; an exception a granter creates waives the policy for the workloads it names, with a
// warning, a metric and an entry in its status; it must expire within the maximum; once it expires, or is deleted,
// the next rollout is judged in full, while scaling and relabelling stay possible (#12, #14 item 5).
func TestExceptionsAreGrantedUnderRBAC(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	granter := exceptionGranter(t)
	mustKubectl(t, "", "-n", ns, "create", "rolebinding", "alice-edits", "--clusterrole=edit", "--user=alice")
	mustKubectl(t, "", "-n", ns, "create", "rolebinding", "alice-admins", "--clusterrole=admin", "--user=alice-admin")
	mustKubectl(t, "", "-n", ns, "create", "rolebinding", "platform-grants", "--clusterrole="+granter, "--user=platform")
	in := func(d time.Duration) string { return time.Now().Add(d).UTC().Format(time.RFC3339) }

	// The people the policies apply to: an editor and a namespace admin can read exceptions but not grant one,
	// nor give themselves the right to.
	eventually(t, 20*time.Second, "edit and admin aggregate the view of exceptions", func(context.Context) (bool, error) {
		r := kubectl(t, "", "-n", ns, "auth", "can-i", "list", "rolloutpolicyexceptions", "--as=alice")
		return r.stdout == "yes\n", nil
	})
	for _, user := range []string{"alice", "alice-admin"} {
		if r := kubectl(t, "", "-n", ns, "auth", "can-i", "create", "rolloutpolicyexceptions", "--as="+user); r.stdout != "no\n" {
			t.Errorf("%s may create RolloutPolicyExceptions: %q", user, r.stdout)
		}
		r := kubectl(t, exception("mine", "surge-unavailable", "surge-app", in(time.Hour)), "-n", ns, "apply", "-f", "-", "--as="+user)
		if r.err == nil || !strings.Contains(r.stderr, "forbidden") {
			t.Errorf("%s created a RolloutPolicyException: %v\n%s", user, r.err, r.stderr)
		}
	}
	r := kubectl(t, "", "-n", ns, "create", "rolebinding", "self-grant", "--clusterrole="+granter, "--user=alice", "--as=alice-admin")
	if r.err == nil || !strings.Contains(r.stderr, "forbidden") {
		t.Errorf("a namespace admin bound the exception-granter role: %v\n%s", r.err, r.stderr)
	}

	// The editor's own annotations waive nothing, and the answer says where a waiver comes from.
	annotated := strings.Replace(seed(t, "surge-app.yaml"), "  labels:\n    app: surge-app\nspec:",
		"  labels:\n    app: surge-app\n  annotations:\n    rollout-guard.io/exempt: surge-unavailable\n    rollout-guard.io/exempt-reason: I said so\nspec:", 1)
	r = kubectl(t, annotated, "-n", ns, "apply", "-f", "-", "--as=alice")
	if r.err == nil || !strings.Contains(r.stderr, "waives nothing in this cluster") || !strings.Contains(r.stderr, "RolloutPolicyException") {
		t.Errorf("an annotation waived a policy, or the denial does not say how to get an exception: %v\n%s", r.err, r.stderr)
	}

	// A granter's exception must expire within the maximum, and name workloads.
	for _, bad := range []struct{ doc, want string }{
		{exception("forever", "surge-unavailable", "surge-app", in(400*24*time.Hour)), "more than 2160h0m0s ahead"},
		{exception("past", "surge-unavailable", "surge-app", in(-time.Hour)), "is in the past"},
		{strings.Replace(exception("everyone", "surge-unavailable", "x", in(time.Hour)), "workloads: {names: [x]}", "workloads: {}", 1), "names no workload"},
	} {
		if r := kubectl(t, bad.doc, "-n", ns, "apply", "-f", "-", "--as=platform"); r.err == nil || !strings.Contains(r.stderr, bad.want) {
			t.Errorf("exception admitted or unclear refusal, want %q: %v\n%s", bad.want, r.err, r.stderr)
		}
	}

	// Granted: it waives the policy for the named workload, with a warning, and records the use.
	expires := time.Now().Add(25 * time.Second)
	mustKubectl(t, exception("batch", "surge-unavailable", "surge-app", expires.UTC().Format(time.RFC3339)), "-n", ns, "apply", "-f", "-", "--as=platform")
	mustKubectl(t, exception("other", "surge-unavailable", "other-app", in(time.Hour)), "-n", ns, "apply", "-f", "-", "--as=platform")
	var admitted kubectlResult
	eventually(t, 10*time.Second, "the exception waives surge-unavailable", func(context.Context) (bool, error) {
		admitted = kubectl(t, seed(t, "surge-app.yaml"), "-n", ns, "apply", "-f", "-", "--as=alice")
		return admitted.err == nil, nil
	})
	if !strings.Contains(admitted.stderr, "RolloutPolicyException "+ns+"/batch waives surge-unavailable") || !strings.Contains(admitted.stderr, "reason: nightly batch") {
		t.Errorf("no warning names the exception and its reason:\n%s", admitted.stderr)
	}
	eventually(t, 15*time.Second, "the use recorded in the exception's status", func(context.Context) (bool, error) {
		r := kubectl(t, "", "-n", ns, "get", "rolloutpolicyexception", "batch", "-o", "jsonpath={.status.useCount} {.status.uses[0].workload} {.status.uses[0].user}")
		return strings.HasPrefix(r.stdout, "1 Deployment/surge-app alice") || strings.Contains(r.stdout, " Deployment/surge-app alice"), nil
	})
	if got := metric(t, suite.cluster.Guard.WebhookMetricsURL, "rollout_guard_policy_exemptions_total", map[string]string{"policy": "surge-unavailable", "by": "exception"}); got < 1 {
		t.Errorf("rollout_guard_policy_exemptions_total{by=exception} = %v", got)
	}
	// It covers only the workloads it names.
	other := strings.ReplaceAll(seed(t, "surge-app.yaml"), "surge-app", "third-app")
	if r := kubectl(t, other, "-n", ns, "apply", "-f", "-", "--as=alice"); r.err == nil {
		t.Errorf("the exception waived the policy for a workload it does not name:\n%s", r.stderr)
	}

	// Expired: at once, the next rollout is judged in full; scaling and relabelling are not blocked.
	time.Sleep(time.Until(expires) + time.Second)
	r = kubectl(t, "", "-n", ns, "set", "image", "deployment/surge-app", "app=nginx:1.17.0", "--as=alice")
	if r.err == nil || !strings.Contains(r.stderr, "[surge-unavailable]") || !strings.Contains(r.stderr, "expired") {
		t.Errorf("a rollout after the exception expired was not judged in full: %v\n%s", r.err, r.stderr)
	}
	r = mustKubectl(t, "", "-n", ns, "label", "deployment", "surge-app", "tier=batch", "--as=alice")
	if !strings.Contains(r.stderr, "already broken before this update, which starts no rollout") {
		t.Errorf("relabelling after expiry gave no ratchet warning:\n%s", r.stderr)
	}

	// Deleted: the same.
	mustKubectl(t, strings.ReplaceAll(seed(t, "surge-app.yaml"), "surge-app", "other-app"), "-n", ns, "apply", "-f", "-", "--as=alice")
	mustKubectl(t, "", "-n", ns, "delete", "rolloutpolicyexception", "other", "--as=platform")
	eventually(t, 10*time.Second, "a deleted exception stops applying", func(context.Context) (bool, error) {
		r := kubectl(t, "", "-n", ns, "set", "image", "deployment/other-app", "app=nginx:1.17.0", "--dry-run=server", "--as=alice")
		return r.err != nil && strings.Contains(r.stderr, "[surge-unavailable]"), nil
	})
}
