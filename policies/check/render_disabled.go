//go:build norender

package check

import "fmt"

// renderDir refuses: the server image is built without Helm's engine and kustomize (tag norender), code the
// webhook and watcher never run, which image scanners would otherwise report against them.
func (r Render) renderDir(dir, kind string) ([]Document, error) {
	return nil, fmt.Errorf("%s is a %s, and this rollout-guard binary (the server image's) is built without Helm and kustomize "+
		"rendering: use the released CLI, or render it first (helm template DIR | rollout-guard check -f -)", dir, kind)
}
