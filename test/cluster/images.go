package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// StandIn is one image the real node can pull: test/images/standin pushed under a Docker Hub name, with a
// behaviour baked into its environment (see the standin command for the variables).
type StandIn struct {
	// Image as a manifest names it; Docker Hub names resolve in the local registry.
	Image string
	Env   []string
}

// StandIns are the seeds' images and the test variants. Any other tag (nginx:1.161) is not in the registry and
// fails to pull for real.
var StandIns = []StandIn{
	{Image: "nginx:1.7.9"}, {Image: "nginx:1.9.1"}, {Image: "nginx:1.14.2"}, {Image: "nginx:1.16.1"}, {Image: "nginx:latest"},
	{Image: "httpd:2.2.31"}, {Image: "httpd:2.2.32"}, {Image: "httpd:2.4.16"}, {Image: "httpd:2.4.17"}, {Image: "httpd:2.4.18"},
	{Image: "tomcat:7", Env: []string{"PORT=8080"}}, {Image: "tomcat:8", Env: []string{"PORT=8080"}},
	{Image: "redis:latest", Env: []string{"PORT=6379"}},
	// Versions of "app" that fail the ways rollouts fail. All serve HTTP on 80 (/, /healthz, /metrics).
	{Image: "app:v1"}, {Image: "app:v2"}, {Image: "app:v3"},
	{Image: "app:never-ready", Env: []string{"READY=never"}},
	{Image: "app:unhealthy", Env: []string{"READY=false"}},
	{Image: "app:crash", Env: []string{"CRASH_AFTER=start"}},
	{Image: "app:errors", Env: []string{"ERROR_RATE=0.2"}},
	{Image: "app:rare-errors", Env: []string{"ERROR_RATE=0.001"}},
	{Image: "app:slow", Env: []string{"LATENCY=500ms"}},
	{Image: "app:slow-start", Env: []string{"READY_AFTER=3m"}},
}

// pushTestImages builds the sandbox image and the stand-in image once, and pushes the stand-in under every name
// of StandIns, each with VERSION set to its tag.
func pushTestImages(ctx context.Context, binDir string, n *RealNode) error {
	repo := RepoRoot()
	platform := "linux/" + runtime.GOARCH
	layouts := filepath.Join(n.Root, "images")
	for _, prog := range []string{"pause", "standin"} {
		// Stand-ins run as root, as the images they replace do (nginx binds port 80).
		if err := imagebuild(ctx, binDir, "build", "--dir", repo, "--package", "./test/images/"+prog, "--platforms", platform,
			"--user", "0:0", "--layout", filepath.Join(layouts, prog)); err != nil {
			return err
		}
	}
	if err := imagebuild(ctx, binDir, "push", "--layout", filepath.Join(layouts, "pause"), n.Registry+"/pause:3.10"); err != nil {
		return err
	}
	for _, s := range StandIns {
		name, tag, _ := strings.Cut(s.Image, ":")
		args := []string{"push", "--layout", filepath.Join(layouts, "standin"), "--env", "VERSION=" + tag}
		for _, e := range s.Env {
			args = append(args, "--env", e)
		}
		if err := imagebuild(ctx, binDir, append(args, n.Registry+"/library/"+name+":"+tag)...); err != nil {
			return err
		}
	}
	return nil
}

func imagebuild(ctx context.Context, binDir string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "imagebuild"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("imagebuild %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// RepoRoot is the checkout this package was built from.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// BinDir is where the cluster's binaries are: $ROLLOUT_GUARD_BIN_DIR, or the checkout's .cache/bin that
// `make cluster-bins` fills.
func BinDir() string {
	if d := os.Getenv("ROLLOUT_GUARD_BIN_DIR"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), ".cache", "bin")
}
