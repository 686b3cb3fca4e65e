package e2e

import (
	"strings"
	"testing"
)

// The other ways a workload owner might write a Deployment: server-side apply under a field manager of their own
// (taking the field over from another with --force-conflicts), and the removed API versions. Each reaches the same
// validating webhook, or does not exist.
func TestBypassPathsReachTheWebhook(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	surge := seed(t, "surge-app.yaml")
	r := kubectl(t, surge, "-n", ns, "apply", "--server-side", "--field-manager=sneaky", "-f", "-")
	if r.err == nil || !strings.Contains(r.stderr, "[surge-unavailable]") {
		t.Errorf("server-side apply under another field manager: err %v\n%s", r.err, r.stderr)
	}

	// A Deployment another manager owns, then its maxUnavailable taken over by force.
	safe := strings.Replace(surge, "maxUnavailable: 50%", "maxUnavailable: 0", 1)
	mustKubectl(t, safe, "-n", ns, "apply", "--server-side", "--field-manager=platform", "-f", "-")
	r = kubectl(t, surge, "-n", ns, "apply", "--server-side", "--field-manager=sneaky", "--force-conflicts", "-f", "-")
	if r.err == nil || !strings.Contains(r.stderr, "[surge-unavailable] spec.strategy.rollingUpdate.maxUnavailable = 50%") {
		t.Errorf("a forced server-side apply under another field manager: err %v\n%s", r.err, r.stderr)
	}

	// apps/v1beta1, apps/v1beta2 and extensions/v1beta1 Deployments were removed in Kubernetes 1.16: the API server
	// serves apps/v1 only, so there is no older version to go around the webhook through.
	for _, version := range []string{"apps/v1beta1", "apps/v1beta2", "extensions/v1beta1"} {
		old := strings.Replace(surge, "apiVersion: apps/v1", "apiVersion: "+version, 1)
		r := kubectl(t, old, "-n", ns, "create", "-f", "-")
		if r.err == nil || !strings.Contains(r.stderr, `no matches for kind "Deployment" in version "`+version+`"`) {
			t.Errorf("a %s Deployment: err %v\n%s", version, r.err, r.stderr)
		}
	}
}
