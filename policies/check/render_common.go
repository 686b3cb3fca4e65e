package check

import (
	"os"
	"path/filepath"
)

// Render says how the Helm charts and kustomizations among the inputs are rendered before they are judged.
type Render struct {
	// ValuesFiles are Helm values files, merged over each chart's values.yaml in order, as helm -f does.
	ValuesFiles []string
	// Release and Namespace are the release name and namespace the charts are rendered for (helm template's).
	Release, Namespace string
}

// kustomizationFiles are the names kustomize recognises.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// renderable says what a directory holds that is rendered rather than read: "chart", "kustomization" or "".
func renderable(dir string) string {
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err == nil {
		return "chart"
	}
	for _, name := range kustomizationFiles {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return "kustomization"
		}
	}
	return ""
}
