package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Guard is rollout-guard running against the cluster as local processes.
type Guard struct {
	WebhookMetricsURL string `json:"webhookMetricsURL"`
	WatcherMetricsURL string `json:"watcherMetricsURL"`
	WebhookPort       int    `json:"webhookPort"`
}

// WebhookConfigurationName is what dev mode names both webhook configurations.
const WebhookConfigurationName = "rollout-guard"

// StartRolloutGuard runs `rollout-guard webhook --dev` and `rollout-guard
// watcher` against the cluster and waits until the webhook is registered and
// serving. extraArgs are passed to both subcommands.
func (c *Cluster) StartRolloutGuard(ctx context.Context, binary, configFile string, detached bool, logf func(string, ...any), extraArgs ...string) error {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	absBinary, err := filepath.Abs(binary)
	if err != nil {
		return err
	}
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	common := []string{"--kubeconfig", c.Kubeconfig, "--namespace", "rollout-guard"}
	if configFile != "" {
		common = append(common, "--config", configFile)
	}
	common = append(common, extraArgs...)
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	logDir := filepath.Join(c.Dir, "logs")
	webhook, err := startProcess("rollout-guard-webhook", absBinary, append([]string{"webhook",
		"--dev", "--webhook-host", "127.0.0.1", "--webhook-port", strconv.Itoa(ports[0]),
		"--cert-dir", filepath.Join(c.Dir, "webhook-certs"),
		"--metrics-addr", addr(ports[1]), "--health-addr", addr(ports[2])}, common...), nil, logDir, detached)
	if err != nil {
		return err
	}
	c.Processes = append(c.Processes, webhook)
	c.Guard = &Guard{WebhookMetricsURL: "http://" + addr(ports[1]) + "/metrics", WebhookPort: ports[0]}
	client, err := c.Clientset()
	if err != nil {
		return err
	}
	plain := &http.Client{Timeout: 2 * time.Second}
	if err := webhook.waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
		if err := httpOK(plain, "http://"+addr(ports[2])+"/readyz", "")(ctx); err != nil {
			return err
		}
		_, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, WebhookConfigurationName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		_, err = client.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, WebhookConfigurationName, metav1.GetOptions{})
		return err
	}); err != nil {
		return err
	}
	if c.Guard.WatcherMetricsURL, err = c.StartWatcher(ctx, "rollout-guard-watcher", absBinary, detached, common...); err != nil {
		return err
	}
	logf("rollout-guard: webhook on https://127.0.0.1:%d registered, watcher running", ports[0])
	return nil
}

// StartWatcher runs one more `rollout-guard watcher` (without leader
// election) against the cluster, named name in the logs, and returns the URL
// of its metrics once it is ready.
func (c *Cluster) StartWatcher(ctx context.Context, name, binary string, detached bool, args ...string) (string, error) {
	metricsPort, err := freePort()
	if err != nil {
		return "", err
	}
	healthPort, err := freePort()
	if err != nil {
		return "", err
	}
	addr := func(p int) string { return "127.0.0.1:" + strconv.Itoa(p) }
	watcher, err := startProcess(name, binary, append([]string{"watcher",
		"--metrics-addr", addr(metricsPort), "--health-addr", addr(healthPort), "--leader-elect=false"}, args...),
		nil, filepath.Join(c.Dir, "logs"), detached)
	if err != nil {
		return "", err
	}
	c.Processes = append(c.Processes, watcher)
	plain := &http.Client{Timeout: 2 * time.Second}
	if err := watcher.waitFor(ctx, 30*time.Second, httpOK(plain, "http://"+addr(healthPort)+"/readyz", "")); err != nil {
		return "", err
	}
	return "http://" + addr(metricsPort) + "/metrics", nil
}

// Kubectl runs the pinned kubectl against the cluster and returns its combined output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "kubectl"), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// InstallCRDs applies the CRD manifests in dir and waits until they are established.
// InstallCertManagerCRDs installs cert-manager's CRDs from the cert-manager module rollout-guard builds against, so
// that they match the Go types its tests check the chart's Certificates with.
func (c *Cluster) InstallCertManagerCRDs(ctx context.Context) error {
	list := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager")
	list.Dir = RepoRoot()
	dir, err := list.Output()
	if err != nil {
		return fmt.Errorf("find the cert-manager module: %w", err)
	}
	return c.InstallCRDs(ctx, filepath.Join(strings.TrimSpace(string(dir)), "deploy", "crds"))
}

func (c *Cluster) InstallCRDs(ctx context.Context, dir string) error {
	if _, err := c.Kubectl(ctx, "apply", "-f", dir); err != nil {
		return fmt.Errorf("install CRDs: %w", err)
	}
	if _, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=30s", "-f", dir); err != nil {
		return fmt.Errorf("wait for CRDs: %w", err)
	}
	return nil
}
