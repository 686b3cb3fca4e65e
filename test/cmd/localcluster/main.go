// Command localcluster starts and stops the local control plane (and
// rollout-guard against it) for make dev-up, dev-down and demo.
//
//	localcluster up   --dir .dev [--rollout-guard bin/rollout-guard] [--config file]
//	localcluster down --dir .dev
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
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
	crds := fs.String("crds", "charts/rollout-guard/crds", "directory of CRD manifests to install before rollout-guard starts")
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
		return up(absDir, *binDir, *guard, *configFile, *crds)
	default:
		return fmt.Errorf("unknown command %q: use up or down", args[0])
	}
}

func up(dir, binDir, guard, configFile, crds string) error {
	if c, err := cluster.LoadState(dir); err == nil && len(c.Running()) > 0 {
		return fmt.Errorf("a cluster is already running from %s (kubeconfig %s): run `make dev-down` first", dir, c.Kubeconfig)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clean %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	absBin, err := filepath.Abs(binDir)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
	c, err := cluster.Start(ctx, cluster.Options{BinDir: absBin, Dir: dir, Detached: true, Logf: logf})
	if err != nil {
		return err
	}
	// Recorded before rollout-guard starts, so that dev-down can clean up a half-started setup.
	if err := c.SaveState(); err != nil {
		c.Stop()
		return err
	}
	if guard != "" {
		if err := c.InstallCRDs(ctx, crds); err != nil {
			return fmt.Errorf("%w\n(the cluster is still up: `make dev-down` stops it)", err)
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
