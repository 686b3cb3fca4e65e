package e2e

import (
	"context"
	"strings"
	"testing"
)

// Editing the pod template of a ReplicaSet a Deployment controls would change what its pods run, the next time one
// is recreated, without a rollout. The chart's ValidatingAdmissionPolicy refuses it, saying what to do instead,
// while the deployment controller's own updates (scaling the ReplicaSet) and edits of a ReplicaSet's metadata go on.
func TestOwnedReplicaSetTemplateIsGuarded(t *testing.T) {
	ns := namespace(t, "owned-rs")
	apply(t, ns, storyManifest("app", "app:v1", ""))
	kubectl(t, "-n", ns, "rollout", "status", "deployment/app", "--timeout=120s")
	rs := kubectl(t, "-n", ns, "get", "replicasets", "-l", "app=app", "-o", "jsonpath={.items[0].metadata.name}")

	out, err := suite.cluster.Kubectl(context.Background(), "-n", ns, "patch", "replicaset", rs, "--type=json",
		"-p", `[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"app:v2"}]`)
	if err == nil {
		t.Fatalf("the pod template of ReplicaSet %s was changed:\n%s", rs, out)
	}
	for _, want := range []string{"is a revision of Deployment app", "kubectl set image deployment/app"} {
		if !strings.Contains(out, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	kubectl(t, "-n", ns, "label", "replicaset", rs, "audited=yes")
	kubectl(t, "-n", ns, "scale", "deployment/app", "--replicas=4")
	kubectl(t, "-n", ns, "rollout", "status", "deployment/app", "--timeout=120s")
	if image := jsonpath(t, ns, "replicaset/"+rs, "{.spec.template.spec.containers[0].image}"); image != "app:v1" {
		t.Errorf("ReplicaSet %s runs %s, want app:v1", rs, image)
	}
}
