package teardown

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rollout-guard/rollout-guard/test/cluster"
)

// childEnv makes the test binary, run again, start a real node with a running pod and wait to be killed.
const childEnv = "ROLLOUT_GUARD_TEARDOWN_CHILD"

// TestMain cleans up a node an earlier, killed run left, so that each test's record of the host is of a host
// without a node.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "" {
		if err := cluster.CleanupStaleNode(cluster.BinDir(), func(f string, a ...any) { fmt.Printf(f+"\n", a...) }); err != nil {
			fmt.Fprintln(os.Stderr, "teardown: FAIL:", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// A run killed outright (SIGKILL: no cleanup of its own) leaves containers, mounts, a bridge, iptables chains and
// cgroups; the next run's start cleans them up, and the host is as it was before either run.
func TestKilledRunIsCleanedUp(t *testing.T) {
	if dir := os.Getenv(childEnv); dir != "" {
		runChild(t, dir)
		return
	}
	before := snapshot(t)
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestKilledRunIsCleanedUp$", "-test.v", "-test.timeout=5m")
	child.Env = append(os.Environ(), childEnv+"="+dir)
	log, err := os.Create(filepath.Join(dir, "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	child.Stdout, child.Stderr = log, log
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	ready := filepath.Join(dir, "ready")
	deadline := time.Now().Add(4 * time.Minute)
	for {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if child.ProcessState != nil || time.Now().After(deadline) {
			_ = child.Process.Kill()
			data, _ := os.ReadFile(log.Name())
			t.Fatalf("the child run did not get a pod running on the real node:\n%s", data)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	if left := snapshot(t).Diff(before); len(left) == 0 {
		t.Fatal("the killed run left nothing behind, so this test proves nothing: the child did not start a node")
	}
	if err := cluster.CleanupStaleNode(cluster.BinDir(), t.Logf); err != nil {
		t.Fatalf("cleanup of the killed run: %v", err)
	}
	if diff := snapshot(t).Diff(before); len(diff) > 0 {
		t.Errorf("after the cleanup the host still differs:\n  %s", strings.Join(diff, "\n  "))
	}
}

// An ordinary run stops its node and leaves the host as it was.
func TestStopLeavesHostAsFound(t *testing.T) {
	before := snapshot(t)
	c := startNodeWithPod(t, t.TempDir())
	c.Stop()
	if diff := snapshot(t).Diff(before); len(diff) > 0 {
		t.Errorf("after Stop the host differs:\n  %s", strings.Join(diff, "\n  "))
	}
}

func runChild(t *testing.T, dir string) {
	startNodeWithPod(t, dir)
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Minute) // until killed
}

// startNodeWithPod starts a real node and runs a pod behind a Service on it, so that teardown has containers,
// a veth, mounts and kube-proxy rules to remove.
func startNodeWithPod(t *testing.T, dir string) *cluster.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{BinDir: cluster.BinDir(), Dir: dir, RealNode: true, Logf: t.Logf})
	if err != nil {
		t.Fatalf("start the real node: %v", err)
	}
	for _, args := range [][]string{
		{"create", "deployment", "app", "--image=app:v1", "--port=80"},
		{"expose", "deployment", "app", "--port=80"},
		{"rollout", "status", "deployment/app", "--timeout=90s"},
	} {
		if out, err := c.Kubectl(ctx, args...); err != nil {
			c.Stop()
			t.Fatalf("%v\n%s", err, out)
		}
	}
	return c
}

func snapshot(t *testing.T) cluster.HostState {
	t.Helper()
	s, err := cluster.SnapshotHost(cluster.BinDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}
