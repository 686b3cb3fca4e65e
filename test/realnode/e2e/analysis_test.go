package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// The analysis the tests apply: the stand-in's promhttp metrics, as the suite's real Prometheus scrapes them
// every 2 s. Windows of 20 s and an interval of 5 s keep each case within a minute or two.
const (
	analysisInterval = 5 * time.Second
	failureLimit     = 2
	bakeTime         = 20 * time.Second
)

func testAnalysis(t *testing.T, name string) {
	t.Helper()
	traffic := `sum(rate(http_requests_total{namespace="{{.Namespace}}",pod=~"{{.Pods}}"}[20s]))`
	apply(t, "", fmt.Sprintf(`apiVersion: rollout-guard.io/v1alpha1
kind: RolloutAnalysis
metadata:
  name: %s
spec:
  interval: %s
  failureLimit: %d
  bakeTime: %s
  queries:
  - name: error-rate
    query: '(sum(rate(http_requests_total{namespace="{{.Namespace}}",pod=~"{{.Pods}}",code=~"5.."}[20s])) or vector(0)) / %[5]s'
    max: "0.05"
    traffic: '%[5]s'
    minTraffic: "0.5"
  - name: p99-seconds
    query: 'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{namespace="{{.Namespace}}",pod=~"{{.Pods}}"}[20s])))'
    max: "0.3"
    traffic: '%[5]s'
    minTraffic: "0.5"
`, name, analysisInterval, failureLimit, bakeTime, traffic))
	t.Cleanup(func() { kubectl(t, "delete", "rolloutanalysis", name, "--ignore-not-found") })
}

// analysedManifest is the story's app as a Deployment or a StatefulSet, scraped by Prometheus, judged by analysis,
// with extra annotations on the workload.
func analysedManifest(kind, analysis, image, annotations string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: %[4]s
metadata:
  name: app
  labels: {app: app}
  annotations:
    rollout-guard.io/analysis: %[1]s
    %[3]s
spec:
  replicas: 2
  %[5]s
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: "80"}
    spec:
      containers:
      - name: app
        image: %[2]s
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  selector: {app: app}
  ports:
  - {port: 80, targetPort: 80}
`, analysis, image, annotations, kind, map[string]string{"StatefulSet": "serviceName: app"}[kind])
}

// analysedStart rolls out app:v1 under a fresh analysis, with traffic from the host through the Service, and waits
// until the analysis has judged revision 1 known-good: only then is there something to roll back to.
func analysedStart(t *testing.T, kind, name, annotations string) (ns string) {
	t.Helper()
	ns = namespace(t, name)
	testAnalysis(t, name)
	apply(t, ns, analysedManifest(kind, name, "app:v1", annotations))
	kubectl(t, "-n", ns, "rollout", "status", strings.ToLower(kind)+"/app", "--timeout=120s")
	startTraffic(t, "http://"+jsonpath(t, ns, "service/app", "{.spec.clusterIP}")+"/")
	began := time.Now()
	// samples need a few scrapes of traffic, then the bake time
	eventually(t, bakeTime+90*time.Second, "the analysis passes revision 1 and the watcher marks it known-good", func() error {
		if kind == "StatefulSet" {
			return revisionKnownGood(t, ns, "1")
		}
		return knownGood(t, ns, "app", "1")
	})
	t.Logf("revision 1 known-good %s after its traffic started (bake %s)", time.Since(began).Round(time.Second), bakeTime)
	return ns
}

// revisionKnownGood says whether the watcher marked the ControllerRevision numbered revision known-good.
func revisionKnownGood(t *testing.T, ns, revision string) error {
	marks := kubectl(t, "-n", ns, "get", "controllerrevisions", "-o",
		`jsonpath={range .items[*]}{.revision}={.metadata.annotations.rollout-guard\.io/known-good}{" "}{end}`)
	for _, m := range strings.Fields(marks) {
		if rev, mark, _ := strings.Cut(m, "="); rev == revision && mark != "" {
			return nil
		}
	}
	return errorf("ControllerRevisions (revision=known-good): %q", marks)
}

// firstReady waits for the first pod running image to be Ready, and says when that was seen.
func firstReady(t *testing.T, ns, image string) time.Time {
	t.Helper()
	eventually(t, 90*time.Second, "a pod of "+image+" is Ready", func() error {
		if state := podStates(t, ns, "app", image); !strings.Contains(state, "Running/True") {
			return errorf("pods of %s: %q", image, state)
		}
		return nil
	})
	return time.Now()
}

// Real pods, a real Prometheus scraping them, traffic from the host through each app's Service: a version that
// answers 20% of requests with 500s, or slower than the threshold, is rolled back within interval x failureLimit
// + 15 s of its first pod being Ready, with the query and value in the Event; one with 0.1% errors is kept and
// marked known-good after the bake time; dry run reports and does nothing.
func TestAnalysisJudgesNewRevisions(t *testing.T) {
	bound := analysisInterval*failureLimit + 15*time.Second
	rollbacks := []struct {
		name, kind, image, annotations, event string
		want                                  []string
	}{
		{name: "errors", kind: "Deployment", image: "app:errors", event: "RolloutGuardRolledBack",
			want: []string{"rolled back from revision 2 (app:errors) to revision 1 (app:v1)", "analysis an-errors, query error-rate: value 0.", "is above max 0.05", "2 failing samples in a row"}},
		{name: "latency", kind: "Deployment", image: "app:slow", event: "RolloutGuardRolledBack",
			want: []string{"rolled back from revision 2 (app:slow) to revision 1 (app:v1)", "query p99-seconds: value", "is above max 0.3"}},
		{name: "statefulset", kind: "StatefulSet", image: "app:errors", event: "RolloutGuardRolledBack",
			want: []string{"rolled back from revision 2 (app:errors) to revision 1 (app:v1): analysis an-statefulset, query error-rate"}},
		{name: "dryrun", kind: "Deployment", image: "app:errors", annotations: `rollout-guard.io/auto-rollback: "dryrun"`, event: "RolloutGuardRollbackSkipped",
			want: []string{"query error-rate", "would roll back to revision 1 (app:v1) [dry run"}},
	}
	for _, tc := range rollbacks {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := analysedStart(t, tc.kind, "an-"+tc.name, tc.annotations)
			workload := strings.ToLower(tc.kind) + "/app"
			kubectl(t, "-n", ns, "set", "image", workload, "app="+tc.image)
			ready := firstReady(t, ns, tc.image)
			var event string
			eventually(t, bound, fmt.Sprintf("%s within %s of the first Ready pod", tc.event, bound), func() error {
				event = kubectl(t, "-n", ns, "get", "events", "--field-selector", "reason="+tc.event, "-o", "jsonpath={.items[*].message}")
				if event == "" {
					return errorf("no %s Event", tc.event)
				}
				return nil
			})
			t.Logf("%s %s after the first pod of %s was Ready (bound %s): %s", tc.event, time.Since(ready).Round(time.Second), tc.image, bound, event)
			for _, w := range tc.want {
				if !strings.Contains(event, w) {
					t.Errorf("the Event lacks %q: %s", w, event)
				}
			}
			want := "app:v1"
			if tc.name == "dryrun" {
				want = tc.image
				time.Sleep(analysisInterval) // a dry run must not undo a moment later either
			} else {
				kubectl(t, "-n", ns, "rollout", "status", workload, "--timeout=120s")
			}
			if image := jsonpath(t, ns, workload, "{.spec.template.spec.containers[0].image}"); image != want {
				t.Errorf("the Deployment runs %s, want %s", image, want)
			}
		})
	}
	t.Run("rare errors are kept", func(t *testing.T) {
		t.Parallel()
		ns := analysedStart(t, "Deployment", "an-rare", "")
		kubectl(t, "-n", ns, "set", "image", "deployment/app", "app=app:rare-errors")
		kubectl(t, "-n", ns, "rollout", "status", "deployment/app", "--timeout=120s")
		completed := time.Now()
		eventually(t, bakeTime+60*time.Second, "revision 2 is marked known-good after the bake time", func() error {
			return knownGood(t, ns, "app", "2")
		})
		took := time.Since(completed)
		t.Logf("revision 2 (0.1%% errors) marked known-good %s after its rollout completed (bake %s)", took.Round(time.Second), bakeTime)
		if took < bakeTime-2*time.Second {
			t.Errorf("marked known-good %s after the rollout completed, before the bake time of %s", took.Round(time.Second), bakeTime)
		}
		if event := kubectl(t, "-n", ns, "get", "events", "--field-selector", "reason=RolloutGuardRolledBack", "-o", "name"); event != "" {
			t.Errorf("a revision with 0.1%% errors was rolled back: %s", event)
		}
	})
}

// With Prometheus down, a version answering 20% errors is neither rolled back nor marked known-good: the analysis
// is inconclusive, and an Event says why. Runs alone: it stops the suite's Prometheus.
func TestAnalysisWithoutPrometheusNeverRollsBack(t *testing.T) {
	ns := analysedStart(t, "Deployment", "an-down", "")
	suite.cluster.Prometheus.Stop()
	t.Cleanup(func() {
		if err := suite.cluster.RestartPrometheus(context.Background()); err != nil {
			t.Errorf("restart Prometheus: %v", err)
		}
	})
	kubectl(t, "-n", ns, "set", "image", "deployment/app", "app=app:errors")
	kubectl(t, "-n", ns, "rollout", "status", "deployment/app", "--timeout=120s")
	eventually(t, 60*time.Second, "an Event says the analysis is inconclusive", func() error {
		event := kubectl(t, "-n", ns, "get", "events", "--field-selector", "reason=RolloutGuardAnalysisInconclusive", "-o", "jsonpath={.items[*].message}")
		if !strings.Contains(event, "connection refused") || !strings.Contains(event, "revision 2") {
			return errorf("RolloutGuardAnalysisInconclusive Events: %q", event)
		}
		return nil
	})
	// Long enough for a failure (interval x failureLimit) and a bake, and then some.
	time.Sleep(analysisInterval*failureLimit + bakeTime + 10*time.Second)
	if event := kubectl(t, "-n", ns, "get", "events", "--field-selector", "reason=RolloutGuardRolledBack", "-o", "name"); event != "" {
		t.Errorf("rolled back without data: %s", event)
	}
	if knownGood(t, ns, "app", "2") == nil {
		t.Error("revision 2 was marked known-good though no sample could judge it")
	}
	if image := jsonpath(t, ns, "deployment/app", "{.spec.template.spec.containers[0].image}"); image != "app:errors" {
		t.Errorf("the Deployment runs %s, want app:errors: nothing may change without data", image)
	}
}
