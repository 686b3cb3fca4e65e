package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/rollout-guard/rollout-guard/test/cluster"
)

// suite is the cluster shared by every test of the package; TestMain sets it
// once before any test runs.
var suite struct {
	cluster *cluster.Cluster
	kubectl string
	repo    string
	binary  string
	// watcherMetrics are both watchers' metrics endpoints: either may act on a workload.
	watcherMetrics []string
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	suite.repo = filepath.Join(filepath.Dir(file), "..", "..")
	binDir := cluster.BinDir()
	suite.kubectl = filepath.Join(binDir, "kubectl")
	if k := os.Getenv("KUBECTL"); k != "" {
		suite.kubectl = k
	}
	dir, err := os.MkdirTemp("", "rollout-guard-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logf := func(format string, args ...any) { fmt.Printf("e2e: "+format+"\n", args...) }
	c, err := setUp(ctx, dir, binDir, logf)
	if c != nil {
		c.StopOnSignal()
		defer c.Stop()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: the local cluster could not be started, so no end-to-end test can run:\n%v\n", err)
		return 1
	}
	suite.cluster = c
	code := m.Run()
	if code != 0 {
		fmt.Printf("e2e: logs of the cluster and rollout-guard kept in %s\n", filepath.Join(dir, "logs"))
		printGuardLogs(dir)
		return code
	}
	c.Stop()
	_ = os.RemoveAll(dir)
	return code
}

func setUp(ctx context.Context, dir, binDir string, logf func(string, ...any)) (*cluster.Cluster, error) {
	suite.binary = filepath.Join(dir, "rollout-guard")
	build := exec.CommandContext(ctx, "go", "build", "-o", suite.binary, "./cmd/rollout-guard")
	build.Dir = suite.repo
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build rollout-guard: %v\n%s", err, out)
	}
	c, err := cluster.Start(ctx, cluster.Options{BinDir: binDir, Dir: dir, Logf: logf})
	if err != nil {
		return nil, err
	}
	for _, dir := range []string{"crds", "policyreports"} {
		if err := c.InstallCRDs(ctx, filepath.Join(suite.repo, "charts", "rollout-guard", "files", dir)); err != nil {
			return c, err
		}
	}
	configFile := filepath.Join(suite.repo, "test", "e2e", "testdata", "config.yaml")
	if err := c.StartRolloutGuard(ctx, suite.binary, configFile, false, logf, "--zap-log-level", "debug"); err != nil {
		return c, err
	}
	// A second watcher, without leader election, acts on the same Deployments: every test that
	// counts exactly one rollback or skip Event also proves that two watchers never act twice.
	second, err := c.StartWatcher(ctx, "rollout-guard-watcher-2", suite.binary, false,
		"--kubeconfig", c.Kubeconfig, "--namespace", "rollout-guard", "--config", configFile)
	if err != nil {
		return c, err
	}
	suite.watcherMetrics = []string{c.Guard.WatcherMetricsURL, second}
	return c, nil
}

// printGuardLogs shows the end of rollout-guard's logs after a failed run,
// so that CI output alone explains most failures.
func printGuardLogs(dir string) {
	for _, name := range []string{"rollout-guard-webhook", "rollout-guard-watcher"} {
		data, err := os.ReadFile(filepath.Join(dir, "logs", name+".log"))
		if err != nil {
			continue
		}
		if len(data) > 6000 {
			data = data[len(data)-6000:]
		}
		fmt.Printf("--- end of %s.log ---\n%s\n", name, data)
	}
}
