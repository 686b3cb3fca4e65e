package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

func TestValidateAnalysis(t *testing.T) {
	gvk := metav1.GroupVersionKind{Group: "rollout-guard.io", Version: "v1alpha1", Kind: "RolloutAnalysis"}
	errorRate := v1alpha1.AnalysisQuery{Name: "error-rate", Max: "0.05",
		Query: `sum(rate(http_requests_total{code=~"5..",pod=~"{{.Pods}}"}[1m])) / sum(rate(http_requests_total{pod=~"{{.Pods}}"}[1m]))`}
	for _, tc := range []struct {
		name    string
		queries []v1alpha1.AnalysisQuery
		sel     *v1alpha1.AnalysisSelector
		allowed bool
		want    []string // in the message or a warning
	}{
		{"valid", []v1alpha1.AnalysisQuery{errorRate}, nil, true, nil},
		{"a query without {{.Pods}} is admitted with a warning", []v1alpha1.AnalysisQuery{{Name: "up", Query: `avg(up{namespace="{{.Namespace}}"})`, Min: "1"}}, nil, true,
			[]string{"spec.queries[0].query (up) does not select the new revision's pods"}},
		{"every problem named at once", []v1alpha1.AnalysisQuery{{Name: "q", Query: "sum(rate(x[1m])", Max: "1"}, {Name: "r", Query: "up", Max: "1", Min: "5"}}, nil, false,
			[]string{"RolloutAnalysis http", "spec.queries[0].query", "PromQL", "spec.queries[1].min", "must not be above max"}},
		{"a selector that selects by nothing", []v1alpha1.AnalysisQuery{errorRate}, &v1alpha1.AnalysisSelector{Kinds: []v1alpha1.WorkloadKind{"Deployment"}}, false,
			[]string{"spec.selector", "set namespaceSelector or workloadSelector"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := exceptionValidator(t, nil)
			raw, err := json.Marshal(&v1alpha1.RolloutAnalysis{
				TypeMeta:   metav1.TypeMeta{APIVersion: "rollout-guard.io/v1alpha1", Kind: "RolloutAnalysis"},
				ObjectMeta: metav1.ObjectMeta{Name: "http"},
				Spec:       v1alpha1.RolloutAnalysisSpec{Queries: tc.queries, Selector: tc.sel},
			})
			if err != nil {
				t.Fatal(err)
			}
			resp := admit(t, v, admissionv1.Create, gvk, raw, nil)
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v: %v", resp.Allowed, resp.Result)
			}
			got := strings.Join(resp.Warnings, "\n")
			if resp.Result != nil {
				got += resp.Result.Message
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("response %q lacks %q", got, w)
				}
			}
			if tc.want == nil && got != "" {
				t.Errorf("unexpected message or warning: %q", got)
			}
		})
	}
}
