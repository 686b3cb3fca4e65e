//go:build !norender

package check

import (
	"context"
	"strings"
	"testing"

	"github.com/rollout-guard/rollout-guard/config"
)

// A directory of a chart, a kustomization and a broken chart: each renderable directory is rendered with Helm's and
// kustomize's own libraries (the chart with the values files and release name given), never read as plain YAML,
// and a chart that fails to render is an error naming it, without losing the others.
func TestReadRendersChartsAndKustomizations(t *testing.T) {
	r := Render{ValuesFiles: []string{"testdata/render/prod-values.yaml"}, Release: "shop"}
	docs, err := r.Read("testdata/render", nil)
	if err == nil || !strings.Contains(err.Error(), "testdata/render/broken-chart: render the Helm chart") || !strings.Contains(err.Error(), "values.name is required") {
		t.Errorf("error %v, want the broken chart named with its template's message", err)
	}
	checker, err := New(context.Background(), config.Default(), Setup{Client: ClientApply})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range docs {
		f, err := checker.Check(context.Background(), d)
		if err != nil {
			t.Fatal(err)
		}
		if f == nil {
			continue // prod-values.yaml: not a workload
		}
		var vs []string
		for _, v := range f.Violations {
			vs = append(vs, v.Policy+"="+string(v.Enforcement))
		}
		got = append(got, f.File+" "+f.Kind+"/"+f.Name+" "+strings.Join(vs, ","))
	}
	want := []string{
		"testdata/render/chart/templates/deployment.yaml Deployment/shop-web image-pinned=warn,surge-unavailable=deny",
		"testdata/render/kustomize/kustomization Deployment/prod-api surge-unavailable=deny",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("judged\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Without the values file, the chart's own values: pinned and 25%.
	docs, err = Render{}.Read("testdata/render/chart", nil)
	if err != nil || len(docs) != 1 || !strings.Contains(string(docs[0].Data), "name: release-name-web") || !strings.Contains(string(docs[0].Data), "image: nginx:1.25.3") {
		t.Errorf("chart with its own values: %v, %d documents", err, len(docs))
	}
	if _, err := (Render{ValuesFiles: []string{"testdata/render/missing.yaml"}}).Read("testdata/render/chart", nil); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("a missing values file: %v", err)
	}
}
