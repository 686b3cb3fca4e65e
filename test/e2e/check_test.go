package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rollout-guard check gives the verdict the cluster gives at kubectl apply,
// for every seed and every policy sample of a Deployment.
func TestCheckMatchesTheCluster(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	files, _ := filepath.Glob(filepath.Join(suite.repo, "test", "seeds", "*.yaml"))
	samples, _ := filepath.Glob(filepath.Join(suite.repo, "policies", "testdata", "*", "*", "*.yaml"))
	files = append(files, samples...)
	config := filepath.Join(suite.repo, "test", "e2e", "testdata", "config.yaml")
	checked := 0
	for _, f := range files {
		// Manifests only: a sample that is a whole admission input (known-bad-revision's) nests its object.
		if content := "\n" + mustReadFile(t, f); !strings.Contains(content, "\nkind: Deployment") {
			continue
		}
		out, err := exec.Command(suite.binary, "check", "--config", config, "-f", f).CombinedOutput()
		offlineDenied := err != nil
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() != 1 {
			t.Fatalf("check %s: %v\n%s", f, err, out)
		}
		r := kubectl(t, "", "-n", ns, "apply", "--dry-run=server", "-f", f)
		// The API server's own validation refuses some samples (progressDeadlineSeconds <= minReadySeconds)
		// before our webhook is asked; that is a refusal all the same.
		clusterDenied := r.err != nil && (strings.Contains(r.stderr, "rollout-guard denied") || strings.Contains(r.stderr, "is invalid"))
		if r.err != nil && !clusterDenied {
			t.Fatalf("kubectl apply %s failed for another reason: %s", f, r.stderr)
		}
		if offlineDenied != clusterDenied {
			t.Errorf("%s: check denied=%v, cluster denied=%v\ncheck:\n%s\ncluster:\n%s", filepath.Base(f), offlineDenied, clusterDenied, out, r.stderr)
		}
		checked++
	}
	if checked < 10 {
		t.Fatalf("only %d manifests compared", checked)
	}
}
