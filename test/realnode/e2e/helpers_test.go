package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := suite.cluster.Kubectl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// eventually polls check every second until it returns nil, and fails the test with its last error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, timeout, err)
		}
		time.Sleep(time.Second)
	}
}

// namespace makes a namespace for one test and deletes it afterwards.
func namespace(t *testing.T, name string) string {
	t.Helper()
	kubectl(t, "create", "namespace", name)
	t.Cleanup(func() {
		_, _ = suite.cluster.Kubectl(context.Background(), "delete", "namespace", name, "--wait=false")
	})
	return name
}

// apply applies a manifest written here.
func apply(t *testing.T, ns, manifest string) string {
	t.Helper()
	out, err := applyErr(t, ns, manifest)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// applyErr applies a manifest written here and returns kubectl's error rather than failing the test.
func applyErr(t *testing.T, ns, manifest string) (string, error) {
	t.Helper()
	out, err := suite.cluster.Kubectl(context.Background(), "-n", ns, "apply", "-f", writeTemp(t, manifest))
	return strings.TrimSpace(out), err
}

// writeTemp writes a manifest to a file the test removes, and returns its path.
func writeTemp(t *testing.T, manifest string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func jsonpath(t *testing.T, ns, object, path string) string {
	t.Helper()
	return kubectl(t, "-n", ns, "get", object, "-o", "jsonpath="+path)
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
