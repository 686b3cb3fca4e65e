package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Release is rollout-guard as `make release` published it to the real node's registry.
type Release struct {
	Version string
	// Chart is the chart's OCI reference (oci://REGISTRY/rg/charts/rollout-guard).
	Chart string
	// Image is the image's repository, Digest its index digest.
	Image, Digest string
}

// Publish runs `make release` against the real node's registry, for this machine's platform only, and returns
// what it published: the path a user takes, with the chart that pins the image it was released with.
func (c *Cluster) Publish(ctx context.Context, version string) (Release, error) {
	if c.Node == nil {
		return Release{}, errors.New("publish: the cluster has no real node (and so no registry)")
	}
	registry := c.Node.Registry + "/rg"
	layout := filepath.Join(c.Dir, "image")
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", RepoRoot(), "release",
		"VERSION="+version, "REGISTRY="+registry, "PLATFORMS=linux/"+runtime.GOARCH, "IMAGE_LAYOUT="+layout,
		"BIN_DIR="+c.BinDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return Release{}, fmt.Errorf("make release: %w\n%s", err, out)
	}
	digest, err := os.ReadFile(layout + ".digest")
	if err != nil {
		return Release{}, fmt.Errorf("make release wrote no digest: %w\n%s", err, out)
	}
	return Release{Version: version, Chart: "oci://" + registry + "/charts/rollout-guard",
		Image: registry + "/rollout-guard", Digest: strings.TrimSpace(string(digest))}, nil
}

// Helm runs the pinned helm against the cluster with a private cache and configuration, and returns its output.
func (c *Cluster) Helm(ctx context.Context, home string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "helm"), append(args, "--kubeconfig", c.Kubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// InstallRelease installs a published release with helm, in namespace rollout-guard, with self-managed TLS
// (cert-manager's controller is not in the module proxy) and otherwise the chart's defaults unless values say
// more, and waits for every pod to be Ready.
func (c *Cluster) InstallRelease(ctx context.Context, r Release, name string, values ...string) (string, error) {
	args := []string{"install", name, r.Chart, "--version", r.Version, "--plain-http", "--namespace", "rollout-guard",
		"--create-namespace", "--set", "certManager.enabled=false", "--wait", "--timeout", "4m"}
	for _, v := range values {
		args = append(args, "--set", v)
	}
	return c.Helm(ctx, filepath.Join(c.Dir, "helm"), args...)
}
