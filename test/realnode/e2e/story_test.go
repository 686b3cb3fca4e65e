package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The seeds' story on real containers, with rollout-guard installed from its chart: a bad version is pulled,
// probed or run for real, the watcher pod rolls it back to the last known-good revision, and a traffic loop
// through the app's Service shows what users saw meanwhile. Each bad rollout runs in its own namespace, all at
// once.
func TestSeedStoryOnRealContainers(t *testing.T) {
	cases := []struct {
		name, app string
		// good are the versions rolled out one after the other, bad the one rollout-guard must undo
		good []string
		bad  string
		// spec is added to the Deployment's spec, as its owner wrote it
		spec string
		// evidence is what Kubernetes reports about the bad pod, for real
		evidence string
	}{
		{name: "image typo", app: "nginx", good: []string{"nginx:1.7.9", "nginx:1.9.1"}, bad: "nginx:1.161",
			evidence: "ImagePullBackOff|ErrImagePull"},
		{name: "never ready", app: "app", good: []string{"app:v1"}, bad: "app:never-ready",
			spec: "progressDeadlineSeconds: 20", evidence: "Running/False"},
		{name: "crash loop", app: "app", good: []string{"app:v1"}, bad: "app:crash", evidence: "CrashLoopBackOff"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := namespace(t, "story-"+strings.ReplaceAll(tc.name, " ", "-"))
			deploy := "deployment/" + tc.app
			apply(t, ns, storyManifest(tc.app, tc.good[0], tc.spec))
			kubectl(t, "-n", ns, "rollout", "status", deploy, "--timeout=120s")
			for _, image := range tc.good[1:] {
				kubectl(t, "-n", ns, "set", "image", deploy, tc.app+"="+image)
				kubectl(t, "-n", ns, "rollout", "status", deploy, "--timeout=120s")
			}
			goodRevision := jsonpath(t, ns, deploy, `{.metadata.annotations.deployment\.kubernetes\.io/revision}`)
			waitKnownGood(t, ns, tc.app, goodRevision)

			// The good rollout's old pods terminate after rollout status returns; the traffic measures the bad
			// rollout, so it starts once they are gone (a connection to a pod being torn down can hang).
			eventually(t, 90*time.Second, "the good rollout's old pods are gone", func() error {
				names := strings.Fields(kubectl(t, "-n", ns, "get", "pods", "-l", "app="+tc.app, "-o",
					`jsonpath={range .items[*]}{.metadata.name}{"/"}{.metadata.deletionTimestamp}{" "}{end}`))
				for _, n := range names {
					if !strings.HasSuffix(n, "/") {
						return errorf("terminating: %s", n)
					}
				}
				return nil
			})
			traffic := startTraffic(t, "http://"+jsonpath(t, ns, "service/"+tc.app, "{.spec.clusterIP}")+"/")
			began := time.Now()
			kubectl(t, "-n", ns, "set", "image", deploy, tc.app+"="+tc.bad)
			eventually(t, 90*time.Second, "the bad pod's state is reported", func() error {
				state := podStates(t, ns, tc.app, tc.bad)
				for _, want := range strings.Split(tc.evidence, "|") {
					if strings.Contains(state, want) {
						t.Logf("%s: %s", tc.bad, state)
						return nil
					}
				}
				return errorf("pods of %s: %q", tc.bad, state)
			})
			var event string
			eventually(t, 3*time.Minute, "the watcher pod rolls back", func() error {
				event = kubectl(t, "-n", ns, "get", "events", "--field-selector", "reason=RolloutGuardRolledBack",
					"-o", "jsonpath={.items[*].message}")
				if event == "" {
					return errorf("no RolloutGuardRolledBack Event")
				}
				return nil
			})
			t.Logf("rolled back %s after the bad image was set: %s", time.Since(began).Round(time.Second), event)
			kubectl(t, "-n", ns, "rollout", "status", deploy, "--timeout=120s")
			if image := jsonpath(t, ns, deploy, "{.spec.template.spec.containers[0].image}"); image != tc.good[len(tc.good)-1] {
				t.Errorf("after the rollback the Deployment runs %s, want %s", image, tc.good[len(tc.good)-1])
			}
			sent, failed := traffic()
			t.Logf("traffic through the Service during the bad rollout: %d requests, %d failed", sent, failed)
			if sent == 0 {
				t.Error("the traffic loop sent nothing")
			}
			if failed != 0 {
				t.Errorf("%d of %d requests failed during the bad rollout; maxUnavailable 0 and the injected probes should keep every one", failed, sent)
			}
		})
	}
}

func storyManifest(app, image, spec string) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  labels: {app: %[1]s}
spec:
  replicas: 3
  %[3]s
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: %[1]s
        image: %[2]s
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  selector: {app: %[1]s}
  ports:
  - {port: 80, targetPort: 80}
`, app, image, spec)
}

// waitKnownGood waits until the watcher marked the ReplicaSet of revision known-good: only then is there
// something to roll back to.
func waitKnownGood(t *testing.T, ns, app, revision string) {
	t.Helper()
	eventually(t, 60*time.Second, "the watcher marks revision "+revision+" known-good", func() error {
		return knownGood(t, ns, app, revision)
	})
}

// knownGood says whether the ReplicaSet of revision carries the watcher's known-good mark.
func knownGood(t *testing.T, ns, app, revision string) error {
	marks := kubectl(t, "-n", ns, "get", "replicasets", "-l", "app="+app, "-o",
		`jsonpath={range .items[*]}{.metadata.annotations.deployment\.kubernetes\.io/revision}={.metadata.annotations.rollout-guard\.io/known-good}{" "}{end}`)
	for _, m := range strings.Fields(marks) {
		if rev, mark, _ := strings.Cut(m, "="); rev == revision && mark != "" {
			return nil
		}
	}
	return errorf("ReplicaSets (revision=known-good): %q", marks)
}

// podStates describes the pods running image: waiting reason, or phase/Ready.
func podStates(t *testing.T, ns, app, image string) string {
	out := kubectl(t, "-n", ns, "get", "pods", "-l", "app="+app, "-o",
		`jsonpath={range .items[*]}{.spec.containers[0].image} {.status.containerStatuses[0].state.waiting.reason} {.status.phase}/{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}`)
	var states []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, image+" ") {
			states = append(states, strings.TrimSpace(strings.TrimPrefix(line, image)))
		}
	}
	return strings.Join(states, "; ")
}

// startTraffic sends requests to url from the host every 50 ms until the returned function is called, which
// reports how many were sent and how many failed (no answer, or not 200).
func startTraffic(t *testing.T, url string) func() (sent, failed int64) {
	ctx, cancel := context.WithCancel(context.Background())
	// 5 s: a SYN lost once on this busy 2-core node is retransmitted after 1 s and 3 s, and a client that waits that
	// long got its answer; a refused connection or an error status fails at once. Slow answers are logged.
	// A new connection per request, as many independent clients make them: each goes where the Service sends it now.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			sent.Add(1)
			began := time.Now()
			resp, err := client.Get(url)
			if took := time.Since(began); took > time.Second {
				t.Logf("request to %s took %s", url, took.Round(time.Millisecond))
			}
			if err != nil {
				failed.Add(1)
				t.Logf("request to %s: %v", url, err)
				continue
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed.Add(1)
			}
		}
	}()
	stop := sync.OnceValues(func() (int64, int64) {
		cancel()
		wg.Wait()
		return sent.Load(), failed.Load()
	})
	t.Cleanup(func() { stop() })
	return stop
}
