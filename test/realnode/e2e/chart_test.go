package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The chart, installed from the published OCI chart with the published image, runs as pods: every webhook and
// watcher replica Ready, each on exactly the image digest the release pinned, as the nonroot user.
func TestChartRunsAsPods(t *testing.T) {
	for component, replicas := range map[string]int{"webhook": 3, "watcher": 2} {
		selector := "app.kubernetes.io/component=" + component
		ready := kubectl(t, "-n", "rollout-guard", "get", "pods", "-l", selector,
			"-o", `jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{" "}{end}`)
		if got := strings.Count(ready, "True"); got != replicas {
			t.Errorf("%s: %d of %d pods Ready (%q)", component, got, replicas, ready)
		}
		images := kubectl(t, "-n", "rollout-guard", "get", "pods", "-l", selector,
			"-o", `jsonpath={range .items[*]}{.status.containerStatuses[0].imageID}{"\n"}{end}`)
		for _, id := range strings.Fields(images) {
			if !strings.HasSuffix(id, "@"+suite.release.Digest) {
				t.Errorf("%s runs image %s, want the released %s", component, id, suite.release.Digest)
			}
		}
		// a replica that lost a start-up race (three webhooks publish one CA) would have restarted
		if restarts := kubectl(t, "-n", "rollout-guard", "get", "pods", "-l", selector,
			"-o", `jsonpath={range .items[*]}{.status.containerStatuses[0].restartCount}{" "}{end}`); strings.Trim(restarts, "0 ") != "" {
			t.Errorf("%s pods restarted: restart counts %q", component, restarts)
		}
		users := kubectl(t, "-n", "rollout-guard", "get", "pods", "-l", selector, "-o", `jsonpath={..securityContext.runAsUser}`)
		if strings.Trim(strings.ReplaceAll(users, "65532", ""), " ") != "" {
			t.Errorf("%s pods run as %q, want 65532 only", component, users)
		}
	}
}

// The API server calls both webhooks through their Service, over the TLS the webhook pods made themselves: three
// replicas raced to create one Secret and fill both caBundles.
func TestWebhooksAnswerThroughTheirService(t *testing.T) {
	for _, kind := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
		service := kubectl(t, "get", kind, "-l", "app.kubernetes.io/instance="+releaseName,
			"-o", "jsonpath={.items[0].webhooks[0].clientConfig.service.name}")
		if service == "" {
			t.Errorf("%s: the webhook is not called through a Service", kind)
		}
		bundle := kubectl(t, "get", kind, "-l", "app.kubernetes.io/instance="+releaseName,
			"-o", "jsonpath={.items[0].webhooks[*].clientConfig.caBundle}")
		bundles := strings.Fields(bundle)
		if len(bundles) == 0 {
			t.Fatalf("%s: no caBundle filled", kind)
		}
		for _, b := range bundles {
			if b != bundles[0] {
				t.Errorf("%s: webhooks hold different caBundles", kind)
			}
		}
	}
	secrets := kubectl(t, "-n", "rollout-guard", "get", "secrets", "-o", "name")
	if strings.Count(secrets, "webhook-tls") != 1 {
		t.Errorf("want one webhook TLS Secret made by the pods, got:\n%s", secrets)
	}

	ns := namespace(t, "through-service")
	mutated := kubectl(t, "-n", ns, "create", "deployment", "probe-me", "--image=nginx:1.7.9", "--port=80",
		"--dry-run=server", "-o", "yaml")
	for _, want := range []string{"readinessProbe:", "tcpSocket:", "maxUnavailable: 0", "progressDeadlineSeconds: 120"} {
		if !strings.Contains(mutated, want) {
			t.Errorf("the mutating webhook did not set %q through its Service:\n%s", want, mutated)
		}
	}
	if !strings.Contains(mutated, "Warning: rollout-guard: set readinessProbe") {
		t.Errorf("kubectl shows no admission warning for the injected probe:\n%s", mutated)
	}
	// the validating webhook, through the same Service: nothing to roll back to is refused
	path := t.TempDir() + "/no-history.yaml"
	if err := os.WriteFile(path, []byte(storyManifest("no-history", "nginx:1.7.9", "revisionHistoryLimit: 0")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := suite.cluster.Kubectl(context.Background(), "-n", ns, "create", "-f", path, "--dry-run=server")
	if err == nil || !strings.Contains(out, "revision-history") {
		t.Errorf("revisionHistoryLimit: 0 was not refused by the validating webhook: %v\n%s", err, out)
	}
}

// The watcher elects one leader among its replicas, and another takes over when the leader's pod is deleted.
func TestWatcherLeaderTakeover(t *testing.T) {
	lease := func() string {
		return kubectl(t, "-n", "rollout-guard", "get", "leases", "-o", `jsonpath={range .items[*]}{.metadata.name}={.spec.holderIdentity}{"\n"}{end}`)
	}
	var name, holder string
	eventually(t, 60*time.Second, "a watcher leader is elected", func() error {
		for _, line := range strings.Fields(lease()) {
			n, h, _ := strings.Cut(line, "=")
			if strings.Contains(n, "watcher") && h != "" {
				name, holder = n, h
				return nil
			}
		}
		return errorf("leases: %q", lease())
	})
	pod, _, _ := strings.Cut(holder, "_")
	kubectl(t, "-n", "rollout-guard", "delete", "pod", pod, "--wait=false")
	eventually(t, 90*time.Second, "another watcher takes the lease", func() error {
		now := kubectl(t, "-n", "rollout-guard", "get", "lease", name, "-o", "jsonpath={.spec.holderIdentity}")
		if now == "" || strings.HasPrefix(now, pod) {
			return errorf("lease %s held by %q", name, now)
		}
		t.Logf("lease %s: %s -> %s", name, holder, now)
		return nil
	})
}

// helm test runs the chart's test pod: rollout-guard selftest dry-runs Deployments through the API server and checks
// that both webhooks answer, which is what failurePolicy Ignore would otherwise hide. The pod exits 0 only if both
// did (webhook.TestSelfTest covers the verdicts); a passed test leaves nothing behind, a failed one keeps its pod for
// its logs.
func TestHelmTestChecksBothWebhooks(t *testing.T) {
	out, err := suite.cluster.Helm(context.Background(), filepath.Join(suite.cluster.Dir, "helm"), "test", releaseName,
		"--namespace", "rollout-guard", "--timeout", "2m")
	if err != nil {
		t.Fatalf("helm test: %v", err)
	}
	if got := len(regexp.MustCompile(`Phase:\s+Succeeded`).FindAllString(out, -1)); got != 4 {
		t.Errorf("helm test: %d of 4 test resources (the pod, its ServiceAccount, Role and RoleBinding) succeeded:\n%s", got, out)
	}
	if left := kubectl(t, "get", "pods,serviceaccounts", "-n", "rollout-guard", "-l", "app.kubernetes.io/component=test", "-o", "name"); left != "" {
		t.Errorf("a passed helm test left %s", left)
	}
}
