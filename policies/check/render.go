//go:build !norender

package check

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// renderDir renders a chart or a kustomization into documents.
func (r Render) renderDir(dir, kind string) ([]Document, error) {
	if kind == "chart" {
		return r.renderChart(dir)
	}
	return renderKustomization(dir)
}

// renderChart renders a Helm chart with Helm's own engine, as `helm template` does with the chart's values, the
// values files and the release name and namespace. Documents are named by their template's path.
func (r Render) renderChart(dir string) ([]Document, error) {
	chrt, err := loader.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: load the Helm chart: %w", dir, err)
	}
	vals := map[string]any{}
	for _, f := range r.ValuesFiles {
		v, err := common.ReadValuesFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: values file: %w", f, err)
		}
		vals = mergeValues(vals, v)
	}
	release, namespace := r.Release, r.Namespace
	if release == "" {
		release = "release-name" // what helm template calls a release it is not told the name of
	}
	if namespace == "" {
		namespace = "default"
	}
	top, err := util.ToRenderValues(chrt, vals, common.ReleaseOptions{Name: release, Namespace: namespace, IsInstall: true, Revision: 1}, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: Helm values: %w", dir, err)
	}
	files, err := engine.Render(chrt, top)
	if err != nil {
		return nil, fmt.Errorf("%s: render the Helm chart: %w", dir, err)
	}
	var docs []Document
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(files)) {
		base := filepath.Base(name)
		if strings.HasPrefix(base, "_") || strings.HasSuffix(base, ".txt") || strings.TrimSpace(files[name]) == "" {
			continue // partials and NOTES.txt
		}
		// Rendered names start with the chart's name; the file is the template in the chart's directory.
		path := filepath.Join(dir, strings.TrimPrefix(name, chrt.Name()+"/"))
		d, err := splitAll(path, strings.NewReader(files[name]))
		for i := range d {
			d[i].Line = 0 // lines of the rendered output, not of the template
		}
		docs = append(docs, d...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return docs, fmt.Errorf("%s: rendered Helm chart: %w", dir, errors.Join(errs...))
	}
	return docs, nil
}

// renderKustomization builds a kustomization with kustomize's own library, as `kubectl kustomize` does.
func renderKustomization(dir string) ([]Document, error) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("%s: kustomize build: %w", dir, err)
	}
	out, err := resources.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("%s: kustomize build: %w", dir, err)
	}
	docs, err := splitAll(filepath.Join(dir, "kustomization"), bytes.NewReader(out))
	for i := range docs {
		docs[i].Line = 0
	}
	return docs, err
}

// mergeValues merges b over a, maps key by key, as Helm merges values files.
func mergeValues(a, b map[string]any) map[string]any {
	out := maps.Clone(a)
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeValues(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}
