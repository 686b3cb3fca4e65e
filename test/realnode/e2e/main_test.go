package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout-guard/rollout-guard/test/cluster"
)

// suite is the real-node cluster every test of the package shares, with rollout-guard installed from its
// published chart; TestMain sets it before any test runs.
var suite struct {
	cluster *cluster.Cluster
	release cluster.Release
}

// releaseName is the Helm release the suite installs.
const releaseName = "rg"

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	binDir := cluster.BinDir()
	logf := func(format string, args ...any) { fmt.Printf("realnode: "+format+"\n", args...) }
	// What an earlier, killed run left is cleaned up before the host is recorded: the check below is about what
	// this run leaves, and the cleanup would otherwise show as a difference.
	if err := cluster.CleanupStaleNode(binDir, logf); err != nil {
		fmt.Fprintln(os.Stderr, "realnode: FAIL:", err)
		return 1
	}
	before, err := cluster.SnapshotHost(binDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "realnode: FAIL: snapshot the host:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "rollout-guard-realnode-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "realnode:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := setUp(ctx, dir, binDir, logf)
	if c != nil {
		c.StopOnSignal()
	}
	code := 1
	if err != nil {
		fmt.Fprintf(os.Stderr, "realnode: FAIL: the real node or the chart could not be started, so no real-node test can run:\n%v\n", err)
	} else {
		suite.cluster = c
		code = m.Run()
	}
	if code != 0 && c != nil {
		printLogs(ctx, c)
	}
	if c != nil {
		c.Stop()
	}
	after, err := cluster.SnapshotHost(binDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "realnode: FAIL: snapshot the host after teardown:", err)
		return 1
	}
	if diff := after.Diff(before); len(diff) > 0 {
		fmt.Fprintf(os.Stderr, "realnode: FAIL: teardown left the host changed:\n  %s\n", strings.Join(diff, "\n  "))
		return 1
	}
	fmt.Println("realnode: teardown left no process, mount, interface, route, iptables rule, cgroup or sysctl behind")
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Printf("realnode: logs kept in %s\n", filepath.Join(dir, "logs"))
	}
	return code
}

func setUp(ctx context.Context, dir, binDir string, logf func(string, ...any)) (*cluster.Cluster, error) {
	c, err := cluster.Start(ctx, cluster.Options{BinDir: binDir, Dir: dir, RealNode: true, Logf: logf})
	if err != nil {
		return c, err
	}
	prom, err := c.StartPrometheus(ctx)
	if err != nil {
		return c, err
	}
	logf("Prometheus at %s scrapes annotated pods", prom.URL)
	began := time.Now()
	r, err := c.Publish(ctx, "0.0.0-e2e")
	if err != nil {
		return c, err
	}
	suite.release = r
	logf("published %s@%s and its chart in %s", r.Image, r.Digest, time.Since(began).Round(100*time.Millisecond))
	began = time.Now()
	// Faster thresholds than the defaults, so that the stories take seconds, not minutes.
	values := []string{"config.rollback.imagePullGracePeriod=10s", "config.rollback.crashLoopRestarts=1",
		"analysis.prometheus.address=" + prom.URL, "analysis.prometheus.timeout=3s"}
	// ROLLOUT_GUARD_E2E_SET adds chart values (k=v,k=v), to measure a setting with the suite's figures.
	if extra := os.Getenv("ROLLOUT_GUARD_E2E_SET"); extra != "" {
		values = append(values, strings.Split(extra, ",")...)
	}
	if _, err := c.InstallRelease(ctx, r, releaseName, values...); err != nil {
		return c, err
	}
	logf("chart installed, every pod Ready, in %s", time.Since(began).Round(100*time.Millisecond))
	return c, nil
}

// printLogs shows the end of rollout-guard's pod logs after a failed run, so that CI output explains it.
func printLogs(ctx context.Context, c *cluster.Cluster) {
	for _, component := range []string{"webhook", "watcher"} {
		out, _ := c.Kubectl(ctx, "-n", "rollout-guard", "logs", "-l", "app.kubernetes.io/component="+component,
			"--tail", "40", "--prefix")
		fmt.Printf("--- rollout-guard %s pods ---\n%s\n", component, out)
	}
	out, _ := c.Kubectl(ctx, "get", "pods", "-A", "-o", "wide")
	fmt.Printf("--- pods ---\n%s\n", out)
}
