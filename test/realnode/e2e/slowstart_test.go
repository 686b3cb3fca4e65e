package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// A healthy app that takes 3 minutes to open its port. With rollout-guard.io/slow-start: 5m its rollout gets a
// startup probe and a progress deadline that covers it, and completes; without, it is a hung start, and the
// watcher rolls it back. Both run at once, on real containers.
func TestSlowStartIsNeverRolledBack(t *testing.T) {
	cases := []struct {
		name       string
		annotation string
		rolledBack bool
	}{
		{name: "slow-start 5m", annotation: "rollout-guard.io/slow-start: \"5m\"", rolledBack: false},
		{name: "no annotation", annotation: "", rolledBack: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := namespace(t, "slow-"+strings.ReplaceAll(strings.Fields(tc.name)[0], "-", ""))
			apply(t, ns, slowStartManifest("app:v1", tc.annotation))
			kubectl(t, "-n", ns, "rollout", "status", "deployment/app", "--timeout=120s")
			waitKnownGood(t, ns, "app", "1")

			began := time.Now()
			apply(t, ns, slowStartManifest("app:slow-start", tc.annotation))
			if !tc.rolledBack {
				if got := jsonpath(t, ns, "deployment/app", "{.spec.progressDeadlineSeconds}"); got != "365" {
					t.Errorf("progressDeadlineSeconds = %s, want 365: 300 s of startup budget + 5 s minReadySeconds + 60 s", got)
				}
				probe := jsonpath(t, ns, "deployment/app", "{.spec.template.spec.containers[0].startupProbe.failureThreshold}")
				if probe != "30" {
					t.Errorf("startupProbe failureThreshold = %q, want 30 (x 10 s = 5m)", probe)
				}
				kubectl(t, "-n", ns, "rollout", "status", "deployment/app", "--timeout=330s")
				took := time.Since(began)
				t.Logf("the slow start completed its rollout after %s", took.Round(time.Second))
				if took < 170*time.Second {
					t.Errorf("the rollout completed after %s, before the app could open its port (3m): the test proves nothing", took)
				}
				if image := jsonpath(t, ns, "deployment/app", "{.spec.template.spec.containers[0].image}"); image != "app:slow-start" {
					t.Errorf("after the slow start the Deployment runs %s, want app:slow-start", image)
				}
				// The watcher looks again when the allowance ends; a rollback it decided on would be an Event by now.
				eventually(t, 60*time.Second, "the watcher marks revision 2 known-good", func() error {
					if ev := rollbackEvents(t, ns); ev != "" {
						t.Fatalf("a healthy slow start was rolled back: %s", ev)
					}
					return knownGood(t, ns, "app", "2")
				})
				return
			}
			var event string
			eventually(t, 5*time.Minute, "the watcher rolls the hung start back", func() error {
				if event = rollbackEvents(t, ns); event == "" {
					return errorf("no RolloutGuardRolledBack Event; pods: %s", podStates(t, ns, "app", "app:slow-start"))
				}
				return nil
			})
			t.Logf("without the annotation the start was rolled back after %s: %s", time.Since(began).Round(time.Second), event)
			kubectl(t, "-n", ns, "rollout", "status", "deployment/app", "--timeout=120s")
			if image := jsonpath(t, ns, "deployment/app", "{.spec.template.spec.containers[0].image}"); image != "app:v1" {
				t.Errorf("after the rollback the Deployment runs %s, want app:v1", image)
			}
		})
	}
}

func rollbackEvents(t *testing.T, ns string) string {
	return kubectl(t, "-n", ns, "get", "events", "--field-selector", "reason=RolloutGuardRolledBack", "-o", "jsonpath={.items[*].message}")
}

func slowStartManifest(image, annotation string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  annotations: {%s}
spec:
  replicas: 1
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
      - name: app
        image: %s
        ports:
        - containerPort: 80
`, annotation, image)
}
