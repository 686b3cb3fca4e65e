package e2e

import (
	"context"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A team's chart installed and upgraded with Helm 3 and Helm 4. Helm 4 applies server-side, so its managedFields
// record what the chart wrote and rollout-guard keeps even the fields equal to API defaults; Helm 3 leaves no such
// record, so those read as unset and get rollout-guard's defaults (the README says so). In both, what differs from
// the API defaults is kept, what nobody wrote is defaulted, and an upgrade that changes the image rolls out once:
// rollout-guard never fights the client.
func TestUserChartWithHelm3And4(t *testing.T) {
	t.Parallel()
	chart := filepath.Join(suite.repo, "test", "e2e", "testdata", "userchart")
	for _, c := range []struct {
		name string
		helm func(*testing.T, ...string) (string, error)
		// what the stored explicit Deployment holds for fields the chart set to the API's defaults
		maxUnavailable string
		history        int32
	}{
		{"helm3", helm, "0", 5},
		{"helm4", helm4, "25%", 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := namespace(t)
			if out, err := c.helm(t, "install", "app", chart, "--namespace", ns, "--wait=false"); err != nil {
				t.Fatalf("install: %v\n%s", err, out)
			}
			check := func(stage string) {
				t.Helper()
				explicit, bare := deployment(t, ns, "explicit"), deployment(t, ns, "bare")
				ru := explicit.Spec.Strategy.RollingUpdate
				if ru.MaxSurge.String() != "1" || ru.MaxUnavailable.String() != c.maxUnavailable || *explicit.Spec.RevisionHistoryLimit != c.history {
					t.Errorf("%s: explicit: maxSurge %s, maxUnavailable %s, revisionHistoryLimit %d; want 1, %s, %d", stage,
						ru.MaxSurge.String(), ru.MaxUnavailable.String(), *explicit.Spec.RevisionHistoryLimit, c.maxUnavailable, c.history)
				}
				if p := explicit.Spec.Template.Spec.Containers[0].ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" {
					t.Errorf("%s: explicit: the chart's readiness probe was replaced: %+v", stage, p)
				}
				bru := bare.Spec.Strategy.RollingUpdate
				if bru.MaxUnavailable.String() != "0" || *bare.Spec.RevisionHistoryLimit != 5 {
					t.Errorf("%s: bare: maxUnavailable %s, revisionHistoryLimit %d; want rollout-guard's 0, 5", stage,
						bru.MaxUnavailable.String(), *bare.Spec.RevisionHistoryLimit)
				}
				if p := bare.Spec.Template.Spec.Containers[0].ReadinessProbe; p == nil || p.TCPSocket == nil {
					t.Errorf("%s: bare: no readiness probe injected: %+v", stage, p)
				}
			}
			check("install")
			if out, err := c.helm(t, "upgrade", "app", chart, "--namespace", ns, "--set", "image=nginx:1.9.1", "--wait=false"); err != nil {
				t.Fatalf("upgrade: %v\n%s", err, out)
			}
			check("upgrade")
			for _, name := range []string{"explicit", "bare"} {
				d := deployment(t, ns, name)
				if img := d.Spec.Template.Spec.Containers[0].Image; img != "nginx:1.9.1" {
					t.Errorf("%s: image %s after the upgrade", name, img)
				}
				if n := replicaSetsOf(t, d); n != 2 {
					t.Errorf("%s: %d ReplicaSets after one image change, want 2: the client and rollout-guard fought over the template", name, n)
				}
			}
		})
	}
}

func replicaSetsOf(t *testing.T, d *appsv1.Deployment) int {
	t.Helper()
	sel := metav1.FormatLabelSelector(d.Spec.Selector)
	rss, err := clientset(t).AppsV1().ReplicaSets(d.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	return len(rss.Items)
}
