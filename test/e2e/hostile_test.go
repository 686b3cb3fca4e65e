package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Attacks from the hostile test (issue: close the holes), each reproduced against the local cluster.

// Denial amplification: a Deployment with 10,000 containers, each breaking a policy, once got a 3.8 MB denial. Now
// the denial names a few per policy, counts the rest and stays within its cap.
func TestHostileManyViolationsAreSummarised(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	name := namespacePolicy(t, ns, "per-container", "    deny contains v if {\n"+
		"      some c in input.object.spec.template.spec.containers\n"+
		"      v := {\"field\": sprintf(\"containers[%s]\", [c.name]), \"msg\": \"this container is not allowed here\"}\n    }\n")

	const n = 10000
	var containers strings.Builder
	for i := range n {
		fmt.Fprintf(&containers, "      - {name: c%05d, image: \"nginx:1.7.9\"}\n", i)
	}
	manifest := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: many, labels: {team: t}}\nspec:\n" +
		"  selector: {matchLabels: {app: many}}\n  template:\n    metadata: {labels: {app: many}}\n    spec:\n" +
		"      containers:\n" + containers.String()
	var r kubectlResult
	eventually(t, 10*time.Second, "the RolloutPolicy is enforced", func(context.Context) (bool, error) {
		r = kubectl(t, manifest, "-n", ns, "create", "--dry-run=server", "-f", "-")
		return r.err != nil && strings.Contains(r.stderr, "["+name+"]"), nil
	})
	denial := r.stderr[strings.Index(r.stderr, "Error from server"):]
	warnings := strings.Count(r.stderr, "Warning: ")
	t.Logf("denial: %d bytes and %d warnings for a %d KB request\n%s", len(denial), warnings, len(manifest)/1024, denial)
	if len(denial) > 4500 || warnings > 34 { // each webhook: 16 warnings and a count
		t.Errorf("the denial is %d bytes with %d warnings: not summarised", len(denial), warnings)
	}
	for _, want := range []string{"[" + name + "] containers[c00000]", fmt.Sprintf("[%s] ... and %d more like these", name, n-3)} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the denial lacks %q", want)
		}
	}
}

// The watcher's undo judged by policies: a careless policy, applied after the good revision ran, forbids that
// revision's image. The undo restores a template the cluster admitted before, so the validating webhook lets it
// through (as it does kubectl rollout undo), while a new apply of that image is still denied.
func TestHostileUndoIsNotJudgedAgain(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	goodNginx(t, ns)
	namespacePolicy(t, ns, "no-old-nginx", "    deny contains v if {\n"+
		"      some c in input.object.spec.template.spec.containers\n      c.image == \"nginx:1.7.9\"\n"+
		"      v := {\"field\": \"image\", \"msg\": \"nginx:1.7.9 is retired\"}\n    }\n")
	eventually(t, 10*time.Second, "the careless policy is enforced", func(context.Context) (bool, error) {
		r := kubectl(t, seed(t, "nginx-deployment.yaml"), "-n", ns, "create", "--dry-run=server", "-o", "name", "-f", "-")
		return r.err != nil && strings.Contains(r.stderr, "nginx:1.7.9 is retired"), nil
	})

	mustKubectl(t, "", "-n", ns, "set", "image", "deployment/nginx-deployment", "nginx=nginx:1.161")
	ev := waitEvent(t, ns, "nginx-deployment", "RolloutGuardRolledBack", 60*time.Second)
	if !strings.Contains(ev.Note, "(nginx:1.7.9)") {
		t.Errorf("rolled back, but not to nginx:1.7.9: %s", ev.Note)
	}
	if d := waitAvailable(t, ns, "nginx-deployment", 90*time.Second); image(d) != "nginx:1.7.9" {
		t.Errorf("image after the undo = %s, want nginx:1.7.9", image(d))
	}
	if failed := events(t, ns, "nginx-deployment", "RolloutGuardRollbackFailed"); len(failed) != 0 {
		t.Errorf("the undo failed first: %s", failed[0].Note)
	}
	// Not a way around the policy: the image in a template no workload had before is still denied.
	other := strings.ReplaceAll(seed(t, "nginx-deployment.yaml"), "nginx-deployment", "another")
	r := kubectl(t, other, "-n", ns, "create", "-f", "-")
	if r.err == nil || !strings.Contains(r.stderr, "nginx:1.7.9 is retired") {
		t.Errorf("a new workload with the retired image was admitted: %v\n%s", r.err, r.stderr)
	}
}

// Missed known-good after an outage: a revision became healthy and was replaced by a typo while no watcher was
// looking. When the watcher comes back it sees the old revision fully available, marks it, and rolls the typo back
// to it; before, it found no known-good target and gave up.
func TestHostileRevisionHealthyDuringOutageIsMarked(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	labelled := strings.Replace(seed(t, "nginx-deployment.yaml"), "    app: nginx\nspec:",
		"    app: nginx\n    rollout-guard.io/e2e-watcher: outage\nspec:", 1)
	if labelled == seed(t, "nginx-deployment.yaml") {
		t.Fatal("could not label the seed")
	}
	mustKubectl(t, labelled, "-n", ns, "apply", "-f", "-")
	waitAvailable(t, ns, "nginx-deployment", 60*time.Second)
	mustKubectl(t, "", "-n", ns, "set", "image", "deployment/nginx-deployment", "nginx=nginx:1.9.1")
	if d := waitAvailable(t, ns, "nginx-deployment", 90*time.Second); image(d) != "nginx:1.9.1" {
		t.Fatalf("image %s", image(d))
	}
	mustKubectl(t, "", "-n", ns, "set", "image", "deployment/nginx-deployment", "nginx=nginx:1.161")
	for _, rs := range replicaSets(t, ns, "app=nginx") {
		if rs.Annotations["rollout-guard.io/known-good"] != "" {
			t.Fatalf("%s was marked while no watcher looked at this Deployment", rs.Name)
		}
	}

	// The watcher comes back (only for this test's Deployment, so others are not affected).
	if _, err := suite.cluster.StartWatcher(context.Background(), "rollout-guard-watcher-outage", suite.binary, false,
		"--kubeconfig", suite.cluster.Kubeconfig, "--namespace", "rollout-guard",
		"--config", filepath.Join(suite.repo, "test", "e2e", "testdata", "config.yaml"),
		"--selector", "rollout-guard.io/e2e-watcher=outage"); err != nil {
		t.Fatalf("start the outage test's watcher: %v", err)
	}
	ev := waitEvent(t, ns, "nginx-deployment", "RolloutGuardRolledBack", 90*time.Second)
	if !strings.Contains(ev.Note, "to revision 2 (nginx:1.9.1)") {
		t.Errorf("rolled back, but not to the revision that was healthy during the outage: %s", ev.Note)
	}
	if d := waitAvailable(t, ns, "nginx-deployment", 90*time.Second); image(d) != "nginx:1.9.1" {
		t.Errorf("image after the rollback = %s, want nginx:1.9.1", image(d))
	}
}

// /scale walking around surge/unavailable: a 1-replica Deployment with maxUnavailable: 100% is admitted (harmless at
// one replica); scaling it to 10 would let the next image change take every pod down at once. A person's scale is
// denied with the policy's message; a ServiceAccount's (the HPA's) is let through with a warning, since a refused
// scale-up can itself take a service down.
func TestHostileScaleIsValidated(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	mustKubectl(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: one}
spec:
  replicas: 1
  strategy: {rollingUpdate: {maxUnavailable: 100%}}
  selector: {matchLabels: {app: one}}
  template:
    metadata: {labels: {app: one}}
    spec:
      containers: [{name: web, image: "nginx:1.9.1", ports: [{containerPort: 80}]}]
`, "-n", ns, "apply", "-f", "-")
	r := kubectl(t, "", "-n", ns, "scale", "deployment/one", "--replicas=10")
	if r.err == nil || !strings.Contains(r.stderr, "scaling Deployment "+ns+"/one to 10 replicas") || !strings.Contains(r.stderr, "surge-unavailable") {
		t.Errorf("a person's scale into maxUnavailable: 100%% of 10 was not denied with the policy's message: %v\n%s", r.err, r.stderr)
	}
	if n := *deployment(t, ns, "one").Spec.Replicas; n != 1 {
		t.Errorf("replicas = %d after a denied scale", n)
	}
	// Automation: the namespace's default ServiceAccount, allowed to scale, is only warned.
	mustKubectl(t, "", "-n", ns, "create", "role", "scaler", "--verb=get,update,patch", "--resource=deployments,deployments/scale")
	mustKubectl(t, "", "-n", ns, "create", "rolebinding", "scaler", "--role=scaler", "--serviceaccount="+ns+":default")
	eventually(t, 30*time.Second, "the ServiceAccount may scale", func(context.Context) (bool, error) {
		r := kubectl(t, "", "-n", ns, "auth", "can-i", "update", "deployments/scale", "--as=system:serviceaccount:"+ns+":default")
		return r.err == nil && strings.TrimSpace(r.stdout) == "yes", nil
	})
	sa := kubectl(t, "", "-n", ns, "scale", "deployment/one", "--replicas=10", "--as=system:serviceaccount:"+ns+":default")
	if sa.err != nil || !strings.Contains(sa.stderr, "allowed for automation") {
		t.Errorf("a ServiceAccount's scale was refused, or not warned: %v\n%s", sa.err, sa.stderr)
	}
	if n := *deployment(t, ns, "one").Spec.Replicas; n != 10 {
		t.Errorf("replicas = %d after the ServiceAccount's scale, want 10", n)
	}
	// A scale that breaks nothing is simply admitted.
	if r := kubectl(t, "", "-n", ns, "scale", "deployment/one", "--replicas=1"); r.err != nil || strings.Contains(r.stderr, "rollout-guard") {
		t.Errorf("scaling back to 1: %v\n%s", r.err, r.stderr)
	}
}

// namespacePolicy applies a RolloutPolicy with the given rules (indented Rego, no package line), limited to ns, and
// removes it when the test ends; it returns the policy's name.
func namespacePolicy(t *testing.T, ns, prefix, rules string) string {
	t.Helper()
	name := prefix + "-" + ns[len(ns)-6:]
	t.Cleanup(func() { kubectl(t, "", "delete", "rolloutpolicy", name, "--ignore-not-found") })
	mustKubectl(t, "", "label", "namespace", ns, "policy-test="+name)
	mustKubectl(t, rolloutPolicy(name, "    package rollout_guard."+strings.ReplaceAll(name, "-", "_")+"\n\n"+rules), "apply", "-f", "-")
	return name
}

// The double-rollback window: a watcher that died between its undo and the rolled-back mark, and a kubectl replace
// that put the bad spec back without the last-action record, once made the next watcher undo the same bad revision
// again. The intent the watcher writes on the ReplicaSet before its undo now tells it that it already did.
func TestHostileNoSecondUndoAfterACrashAndAReplace(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	goodNginx(t, ns)
	mustKubectl(t, "", "-n", ns, "set", "image", "deployment/nginx-deployment", "nginx=nginx:1.161")
	waitEvent(t, ns, "nginx-deployment", "RolloutGuardRolledBack", 60*time.Second)
	waitAvailable(t, ns, "nginx-deployment", 90*time.Second)

	// kubectl replace with the bad image and without rollout-guard's last-action record
	d := deployment(t, ns, "nginx-deployment")
	d.Spec.Template.Spec.Containers[0].Image = "nginx:1.161"
	delete(d.Annotations, "rollout-guard.io/last-action")
	// deliberately: known-bad-revision (deny in this suite) refuses a rolled-back revision otherwise
	d.Annotations["rollout-guard.io/retry-rolled-back"] = "replaying a crash"
	d.ResourceVersion, d.ManagedFields = "", nil
	d.APIVersion, d.Kind = "apps/v1", "Deployment"
	replaced, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	mustKubectl(t, string(replaced), "-n", ns, "replace", "-f", "-")
	// the crash: the mark the dead watcher never wrote
	var bad string
	eventually(t, 30*time.Second, "the bad ReplicaSet is current again", func(context.Context) (bool, error) {
		for _, rs := range replicaSets(t, ns, "app=nginx") {
			if rs.Spec.Template.Spec.Containers[0].Image == "nginx:1.161" && *rs.Spec.Replicas > 0 {
				bad = rs.Name
				return true, nil
			}
		}
		return false, nil
	})
	mustKubectl(t, "", "-n", ns, "annotate", "replicaset", bad, "rollout-guard.io/rolled-back-")

	eventually(t, 30*time.Second, "the bad ReplicaSet marked rolled back again, from the intent", func(context.Context) (bool, error) {
		for _, rs := range replicaSets(t, ns, "app=nginx") {
			if rs.Name == bad {
				return rs.Annotations["rollout-guard.io/rolled-back"] != "", nil
			}
		}
		return false, nil
	})
	time.Sleep(10 * time.Second) // the grace period (5 s) twice over: a second undo would have come by now
	if n := len(events(t, ns, "nginx-deployment", "RolloutGuardRolledBack")); n != 1 {
		t.Errorf("%d rollbacks of the same bad revision, want 1", n)
	}
	if img := image(deployment(t, ns, "nginx-deployment")); img != "nginx:1.161" {
		t.Errorf("image %s: the replaced spec was undone a second time", img)
	}
}

// A status that lies: a RolloutPolicy that compiles alone but not with the set in force was admitted, and every later
// policy then said Ready=True while none was enforced. Admission now compiles a policy with the set, reserves the
// library's package and keeps a policy to its own data; Ready=True is seen with the policy's verdict in
// TestPolicyRolloutPolicies.
func TestHostilePoliciesCannotBreakTheSet(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ what, name, rules, want string }{
		{"merges into the built-ins' library", "lib", "    deny contains \"x\" if { input.object.kind == \"Nothing\" }\n", "taken by a built-in policy or the built-in library"},
		{"a package under a built-in's rule", "surge-unavailable.deny", "    warn contains \"x\" if { input.object.kind == \"Nothing\" }\n", "not with the policies in force"},
		{"reads another policy's rules", "peek", "    deny contains msg if {\n      some msg in data.rollout_guard.surge_unavailable.deny\n    }\n", "reads outside the policy's own package"},
		{"reads every policy's parameters", "peek", "    deny contains msg if {\n      msg := sprintf(\"%v\", [data])\n    }\n", "reads outside the policy's own package"},
	} {
		manifest := rolloutPolicy(c.name, "    package "+strings.ReplaceAll("rollout_guard."+c.name, "-", "_")+"\n\n"+c.rules)
		r := kubectl(t, manifest, "apply", "-f", "-")
		if r.err == nil {
			kubectl(t, "", "delete", "rolloutpolicy", c.name, "--ignore-not-found")
		}
		if r.err == nil || !strings.Contains(r.stderr, c.want) {
			t.Errorf("a RolloutPolicy that %s: %v\n%s", c.what, r.err, r.stderr)
		}
	}
}
