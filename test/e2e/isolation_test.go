package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// One careless RolloutPolicy must not stop the cluster: a policy that fails on most Deployments (to_number of an
// annotation they lack, read with a default of "") yields only its own onError verdict, a warning by default, while the built-ins' verdicts
// stand; the failure is a metric and the policy's Evaluating condition. With onError: deny it denies, naming itself.
func TestCarelessPolicyAffectsOnlyItself(t *testing.T) {
	t.Parallel()
	const rules = `    deny contains msg if {
      to_number(object.get(input.object.metadata, ["annotations", "example.com/size"], "")) > 10
      msg := "too big"
    }
`
	for _, tt := range []struct {
		name, onError string
		verdict       string // the onError in force, as the warning or denial names it
		denied        bool
	}{{"allow by default", "", "allow", false}, {"deny when asked", "deny", "deny", true}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := namespace(t)
			name := namespacePolicy(t, ns, "careless", rules)
			if tt.onError != "" {
				r := kubectl(t, "", "patch", "rolloutpolicy", name, "--type=merge", "-p", `{"spec":{"onError":"`+tt.onError+`"}}`)
				if r.err != nil {
					t.Fatalf("%v\n%s", r.err, r.stderr)
				}
			}
			var r kubectlResult
			eventually(t, 10*time.Second, "the policy is evaluated (and fails) on a Deployment", func(context.Context) (bool, error) {
				r = kubectl(t, seed(t, "nginx-deployment.yaml"), "-n", ns, "apply", "--dry-run=server", "-f", "-")
				return strings.Contains(r.stderr, "could not be evaluated") && strings.Contains(r.stderr, "onError: "+tt.verdict), nil
			})
			if (r.err != nil) != tt.denied || !strings.Contains(r.stderr, "["+name+"]") {
				t.Errorf("onError %q: denied = %v, want %v, naming the policy:\n%s", tt.onError, r.err != nil, tt.denied, r.stderr)
			}
			// the built-ins' verdicts stand
			surge := kubectl(t, seed(t, "surge-app.yaml"), "-n", ns, "apply", "--dry-run=server", "-f", "-")
			if surge.err == nil || !strings.Contains(surge.stderr, "[surge-unavailable]") {
				t.Errorf("a failing RolloutPolicy took the built-ins' verdicts with it: %v\n%s", surge.err, surge.stderr)
			}
			// a Deployment that carries the annotation is judged by the policy
			big := strings.Replace(seed(t, "nginx-deployment.yaml"), "  labels:\n    app: nginx\nspec:", "  labels:\n    app: nginx\n  annotations:\n    example.com/size: \"20\"\nspec:", 1)
			if r := kubectl(t, big, "-n", ns, "apply", "--dry-run=server", "-f", "-"); r.err == nil || !strings.Contains(r.stderr, "too big") {
				t.Errorf("the policy did not judge a Deployment it can evaluate: %v\n%s", r.err, r.stderr)
			}
			eventually(t, 15*time.Second, "the policy's Evaluating condition says it fails", func(context.Context) (bool, error) {
				r := kubectl(t, "", "get", "rolloutpolicy", name, "-o", `jsonpath={.status.conditions[?(@.type=="Evaluating")].status} {.status.conditions[?(@.type=="Evaluating")].message}`)
				return strings.HasPrefix(r.stdout, "False ") && strings.Contains(r.stdout, "could not be evaluated"), nil
			})
			if got := metric(t, suite.cluster.Guard.WebhookMetricsURL, "rollout_guard_policy_evaluation_failures_total", map[string]string{"policy": name}); got < 1 {
				t.Errorf("rollout_guard_policy_evaluation_failures_total{policy=%s} = %v", name, got)
			}
		})
	}
}

// A policy that loops until its deadline costs one request its deadline, and is then skipped for a minute (its
// onError verdict stands in), so the cluster's admissions stay fast. It loops without allocating (32^6 bindings of a
// constant array), so that its deadline, not its memory limit, stops it.
func TestLoopingPolicyIsSkipped(t *testing.T) {
	t.Parallel()
	testStoppedPolicy(t, "loops", `    deny contains msg if {
      xs := [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32]
      some a in xs
      some b in xs
      some c in xs
      some d in xs
      some e in xs
      some f in xs
      a == -1
      msg := sprintf("%d %d %d %d %d %d", [a, b, c, d, e, f])
    }
`, "deadline")
}

// A policy that builds a huge value is stopped at its memory limit (policies.evaluationMemoryMiB, 64 MiB), not after
// allocating what its deadline allows, and is then skipped for a minute. Not parallel: the limit counts the process's
// allocations, so another slow policy running at the same time (the looping one) could be stopped by this one's.
func TestHungryPolicyIsStopped(t *testing.T) {
	testStoppedPolicy(t, "hungry", `    deny contains msg if {
      n := count([x | some x in numbers.range(1, 1000000000)])
      msg := sprintf("%d", [n])
    }
`, "memory limit of 64 MiB")
}

// testStoppedPolicy applies rules as a RolloutPolicy in a namespace of its own: the first request's warning must say
// why the policy was stopped, and the next request must skip it.
func testStoppedPolicy(t *testing.T, prefix, rules, why string) {
	ns := namespace(t)
	name := namespacePolicy(t, ns, prefix, rules)
	var first kubectlResult
	eventually(t, 20*time.Second, "the policy is evaluated", func(context.Context) (bool, error) {
		first = kubectl(t, seed(t, "nginx-deployment.yaml"), "-n", ns, "apply", "--dry-run=server", "-f", "-")
		return strings.Contains(first.stderr, "["+name+"]"), nil
	})
	if first.err != nil || !strings.Contains(first.stderr, why) {
		t.Errorf("a stopped RolloutPolicy (onError: allow) denied, or the warning does not say %q: %v\n%s", why, first.err, first.stderr)
	}
	start := time.Now()
	r := mustKubectl(t, seed(t, "nginx-deployment.yaml"), "-n", ns, "apply", "--dry-run=server", "-f", "-")
	took := time.Since(start)
	if !strings.Contains(r.stderr, "skipped until") || !strings.Contains(r.stderr, why) {
		t.Errorf("the stopped policy was evaluated again at once, or the warning does not say why:\n%s", r.stderr)
	}
	t.Logf("a request while the %s policy is skipped took %s (kubectl included)", prefix, took.Round(time.Millisecond))
}
