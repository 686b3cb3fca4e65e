//go:build norender

package check

import (
	"strings"
	"testing"
)

// The server image's binary says what it cannot do and how to do it instead, rather than reading templates as YAML.
func TestNorenderRefusesCharts(t *testing.T) {
	_, err := Render{}.Read("testdata/render/chart", nil)
	if err == nil || !strings.Contains(err.Error(), "built without Helm and kustomize rendering") || !strings.Contains(err.Error(), "helm template") {
		t.Errorf("error %v", err)
	}
}
