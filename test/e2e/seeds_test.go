package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// seed returns the manifest test/seeds/name.
func seed(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(suite.repo, "test", "seeds", name))
	if err != nil {
		t.Fatalf("read seed %s: %v", name, err)
	}
	return string(data)
}

func mustReadFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
