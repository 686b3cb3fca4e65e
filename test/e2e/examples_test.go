package e2e

import (
	"path/filepath"
	"testing"
)

// Every example RolloutPolicy is admitted by the cluster as it is: its Rego compiles with the set in force, and its
// parameters validate against its parameterSchema (server-side dry run: nothing is enforced).
func TestExamplePoliciesAreAdmitted(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(suite.repo, "examples", "*", "policy.yaml"))
	if err != nil || len(files) < 10 {
		t.Fatalf("%d example policies (%v), want at least 10", len(files), err)
	}
	for _, f := range files {
		if r := kubectl(t, "", "apply", "--dry-run=server", "-f", f); r.err != nil {
			t.Errorf("%s was not admitted: %s", filepath.Base(filepath.Dir(f)), r.stderr)
		}
	}
}
