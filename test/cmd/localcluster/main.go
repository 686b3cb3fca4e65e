// Command localcluster starts and stops the local control plane (and
// rollout-guard against it) for make dev-up, dev-down and demo.
//
//	localcluster up   --dir .dev [--rollout-guard bin/rollout-guard] [--config file]
//	localcluster up   --dir .dev --real-node [--set key=value]...
//	localcluster down --dir .dev
//
// With --real-node the cluster has a real node and a local registry instead of kwok, and rollout-guard is not run
// as local processes: it is published there as `make release` does it and installed from its chart, with the
// --set values. It needs root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rollout-guard/rollout-guard/test/cluster"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: localcluster up|down [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	dir := fs.String("dir", ".dev", "directory for the cluster's files and state")
	binDir := fs.String("bin-dir", ".cache/bin", "directory with the control plane binaries")
	guard := fs.String("rollout-guard", "", "rollout-guard binary to run against the cluster (empty: none)")
	configFile := fs.String("config", "", "rollout-guard config file")
	crds := fs.String("crds", "charts/rollout-guard/files/crds,charts/rollout-guard/files/policyreports", "directories of CRD manifests to install before rollout-guard starts, comma-separated")
	realNode := fs.Bool("real-node", false, "run a real node and install rollout-guard's chart on it (root)")
	var values listFlag
	fs.Var(&values, "set", "a chart value for --real-node, key=value (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	absDir, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	switch args[0] {
	case "down":
		if err := cluster.StopDetached(absDir); err != nil {
			return err
		}
		fmt.Println("localcluster: stopped")
		return nil
	case "up":
		if *realNode {
			return upReal(absDir, *binDir, values)
		}
		return up(absDir, *binDir, *guard, *configFile, *crds)
	default:
		return fmt.Errorf("unknown command %q: use up or down", args[0])
	}
}

type listFlag []string

func (l *listFlag) String() string     { return fmt.Sprint(*l) }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// startDetached starts a cluster that outlives this process and records it for `localcluster down`.
func startDetached(ctx context.Context, dir, binDir string, realNode bool) (*cluster.Cluster, error) {
	if c, err := cluster.LoadState(dir); err == nil && len(c.Running()) > 0 {
		return nil, fmt.Errorf("a cluster is already running from %s (kubeconfig %s): run `make dev-down` first", dir, c.Kubeconfig)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("clean %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	absBin, err := filepath.Abs(binDir)
	if err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	c, err := cluster.Start(ctx, cluster.Options{BinDir: absBin, Dir: dir, Detached: true, RealNode: realNode, Logf: logf})
	if err != nil {
		return nil, err
	}
	// Recorded before rollout-guard starts, so that dev-down can clean up a half-started setup.
	if err := c.SaveState(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func upReal(dir, binDir string, values []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := startDetached(ctx, dir, binDir, true)
	if err != nil {
		return err
	}
	prom, err := c.StartPrometheus(ctx)
	if err != nil {
		return fmt.Errorf("%w\n(the cluster is still up: `make dev-down` stops it)", err)
	}
	if err := c.SaveState(); err != nil {
		return err
	}
	fmt.Printf("localcluster: Prometheus at %s scrapes pods annotated prometheus.io/scrape\n", prom.URL)
	r, err := c.Publish(ctx, "0.0.0-dev")
	if err != nil {
		return fmt.Errorf("%w\n(the cluster is still up: `make dev-down` stops it)", err)
	}
	fmt.Printf("localcluster: published %s@%s and %s\n", r.Image, r.Digest, r.Chart)
	out, err := c.InstallRelease(ctx, r, "rollout-guard", append([]string{"analysis.prometheus.address=" + prom.URL}, values...)...)
	if err != nil {
		return fmt.Errorf("%w\n(the cluster is still up: `make dev-down` stops it)", err)
	}
	fmt.Print(out)
	fmt.Printf("localcluster: up with a real node; export KUBECONFIG=%s\n", c.Kubeconfig)
	return nil
}

func up(dir, binDir, guard, configFile, crds string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	c, err := startDetached(ctx, dir, binDir, false)
	if err != nil {
		return err
	}
	if guard != "" {
		for _, d := range strings.Split(crds, ",") {
			if err := c.InstallCRDs(ctx, d); err != nil {
				return fmt.Errorf("%w\n(the cluster is still up: `make dev-down` stops it)", err)
			}
		}
		if err := c.StartRolloutGuard(ctx, guard, configFile, true, logf); err != nil {
			_ = c.SaveState()
			return fmt.Errorf("%w\n(the cluster is still up: `make dev-down` stops it)", err)
		}
		if err := c.SaveState(); err != nil {
			return err
		}
	}
	fmt.Printf("localcluster: up; export KUBECONFIG=%s\n", c.Kubeconfig)
	return nil
}
