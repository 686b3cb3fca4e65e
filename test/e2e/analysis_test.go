package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubectl apply of a RolloutAnalysis: one the watcher could not run is refused, with every problem named by its
// field; a query that does not select the new revision's pods is admitted with a warning.
func TestRolloutAnalysisIsValidatedAtApply(t *testing.T) {
	t.Parallel()
	bad := `apiVersion: rollout-guard.io/v1alpha1
kind: RolloutAnalysis
metadata: {name: e2e-bad}
spec:
  interval: 1s
  queries:
  - {name: error-rate, query: 'sum(rate(http_requests_total{pod=~"{{.Pods}}"}[1m])', max: "0.05"}
  - {name: latency, query: 'up{pod=~"{{.Pod}}"}', max: "1", min: "2"}
`
	r := kubectl(t, bad, "apply", "-f", "-")
	if r.err == nil {
		kubectl(t, "", "delete", "rolloutanalysis", "e2e-bad")
		t.Fatal("an analysis whose PromQL does not parse was admitted")
	}
	for _, want := range []string{"spec.interval", "at least 5s", "spec.queries[0].query", "PromQL", "spec.queries[1].query", "{{.Pods}}", "spec.queries[1].min"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the denial does not name %q:\n%s", want, r.stderr)
		}
	}
	warned := `apiVersion: rollout-guard.io/v1alpha1
kind: RolloutAnalysis
metadata: {name: e2e-warned}
spec:
  queries:
  - {name: up, query: 'avg(up{namespace="{{.Namespace}}"})', min: "1"}
`
	r = mustKubectl(t, warned, "apply", "-f", "-")
	t.Cleanup(func() { kubectl(t, "", "delete", "rolloutanalysis", "e2e-warned") })
	if !strings.Contains(r.stderr, "does not select the new revision's pods") {
		t.Errorf("no warning for a query without {{.Pods}}:\n%s", r.stderr)
	}
}

// An analysis selects workloads by namespace labels through the API server: in a selected namespace a new
// revision is held back from known-good while the analysis cannot judge it (the suite's watcher has no Prometheus),
// and an Event says why; in another namespace the same Deployment is marked known-good as before.
func TestAnalysisSelectsByNamespaceAndHoldsWithoutData(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	selected, other := namespace(t), namespace(t)
	cs := clientset(t)
	ns, err := cs.CoreV1().Namespaces().Get(ctx, selected, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels["e2e-analysis"] = selected
	if _, err := cs.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	name := "e2e-" + selected
	mustKubectl(t, fmt.Sprintf(`apiVersion: rollout-guard.io/v1alpha1
kind: RolloutAnalysis
metadata: {name: %s}
spec:
  interval: 5s
  bakeTime: 0s
  selector: {namespaceSelector: {matchLabels: {e2e-analysis: %s}}}
  queries:
  - {name: error-rate, query: 'sum(rate(http_requests_total{pod=~"{{.Pods}}",code=~"5.."}[1m]))', max: "0.05"}
`, name, selected), "apply", "-f", "-")
	t.Cleanup(func() { kubectl(t, "", "delete", "rolloutanalysis", name) })
	for _, n := range []string{selected, other} {
		mustKubectl(t, "", "-n", n, "create", "deployment", "web", "--image=nginx:1.7.9", "--port=80")
	}
	waitAvailable(t, other, "web", time.Minute)
	waitAvailable(t, selected, "web", time.Minute)
	knownGood := func(ctx context.Context, n string) (bool, error) {
		sets, err := cs.AppsV1().ReplicaSets(n).List(ctx, metav1.ListOptions{})
		if err != nil || len(sets.Items) != 1 {
			return false, err
		}
		return sets.Items[0].Annotations["rollout-guard.io/known-good"] != "", nil
	}
	eventually(t, 30*time.Second, "the Deployment outside the analysis is marked known-good", func(ctx context.Context) (bool, error) {
		return knownGood(ctx, other)
	})
	eventually(t, 30*time.Second, "an Event says the analysis is inconclusive", func(ctx context.Context) (bool, error) {
		events := mustKubectl(t, "", "-n", selected, "get", "events", "--field-selector", "reason=RolloutGuardAnalysisInconclusive", "-o", "jsonpath={.items[*].message}").stdout
		return strings.Contains(events, "analysis "+name+" is inconclusive") && strings.Contains(events, "no Prometheus is configured"), nil
	})
	// Samples every 5 s, bake time 0: had a sample passed, the mark would be there by now.
	time.Sleep(10 * time.Second)
	if good, err := knownGood(ctx, selected); err != nil || good {
		t.Errorf("the revision under an analysis that judged nothing was marked known-good (err %v)", err)
	}
}
