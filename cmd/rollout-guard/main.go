// Command rollout-guard makes Kubernetes workload updates safe by default.
//
//	rollout-guard webhook   serve the mutating and validating admission webhooks
//	rollout-guard watcher   roll back Deployments whose new ReplicaSet stalls, and audit the running workloads
//	rollout-guard check     run the policies on manifests offline
//	rollout-guard test      run Rego policy tests
//	rollout-guard selftest  check that both webhooks answer through the API server (helm test)
//	rollout-guard status    one workload's revisions, marks, last action, Events, exceptions and verdict
//	rollout-guard audit     the policies in force, run on the workloads already running in a cluster
//	rollout-guard version   print the version
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/rollout-guard/rollout-guard/audit"
	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
	"github.com/rollout-guard/rollout-guard/rollback"
	"github.com/rollout-guard/rollout-guard/webhook"
)

// What the binary was built from, stamped by `make build`, `make image` and `make release` with
// -ldflags "-X main.version=... -X main.commit=... -X main.date=...".
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the one exit point: it returns the process exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	if cmd == "version" {
		fmt.Fprintf(stdout, "rollout-guard %s (commit %s, built %s)\n", version, commit, date)
		return 0
	}
	switch cmd {
	case "check":
		return runCheck(context.Background(), rest, stdin, stdout, stderr)
	case "test":
		return runTest(context.Background(), rest, stdout, stderr)
	case "selftest":
		return runSelfTest(context.Background(), rest, stdout, stderr)
	case "status":
		return runStatus(context.Background(), rest, stdout, stderr)
	case "audit":
		return runAudit(context.Background(), rest, stdout, stderr)
	}
	if cmd != "webhook" && cmd != "watcher" {
		fmt.Fprintf(stderr, "rollout-guard: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	opts, logOpts, err := parseOptions(cmd, rest, stderr)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard:", err)
		return 2
	}
	logger := newLogger(logOpts, stderr)
	ctrl.SetLogger(logger)
	// client-go logs (leader election, watches) through klog: the same structured logger, so there is one format.
	klog.SetLogger(logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cmd, opts); err != nil {
		ctrl.Log.Error(err, "rollout-guard stopped", "command", cmd)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cmd string, opts config.Options) error {
	cfg, err := restConfig(opts.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = opts.KubeAPIQPS, opts.KubeAPIBurst
	scheme := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	var reg prometheus.Registerer = ctrlmetrics.Registry
	if err := reg.Register(buildInfo()); err != nil {
		return err
	}
	switch cmd {
	case "webhook":
		s, err := webhook.NewServer(cfg, opts, scheme, reg)
		if err != nil {
			return err
		}
		return s.Start(ctx)
	default:
		w, err := rollback.NewWatcher(cfg, opts, scheme, reg)
		if err != nil {
			return err
		}
		// The audit runs in the watcher, not the webhook: the watcher is already the one leader-elected process,
		// and an audit of thousands of workloads there takes no CPU from the pods that answer admission.
		if opts.Audit.Enabled {
			m, err := audit.NewMetrics(reg)
			if err != nil {
				return err
			}
			if err := audit.Setup(ctx, w.Manager(), opts, m); err != nil {
				return err
			}
		}
		return w.Start(ctx)
	}
}

// buildInfo is rollout_guard_build_info: what each component was built from, for dashboards and alerts to join on.
func buildInfo() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "rollout_guard_build_info",
		Help: "1, labelled with the version, commit, build date and Go version rollout-guard was built with.",
	}, []string{"version", "commit", "date", "goversion"})
	g.WithLabelValues(version, commit, date, runtime.Version()).Set(1)
	return g
}

const usage = `rollout-guard makes Kubernetes workload updates safe by default.

Usage:
  rollout-guard webhook [flags]   serve the mutating and validating admission webhooks
  rollout-guard watcher [flags]   roll back Deployments whose new ReplicaSet stalls, and audit the
                                  running workloads into PolicyReports (config audit.*)
  rollout-guard check -f FILE|DIR|- [--policy FILE|DIR] [--exception FILE|DIR] [-o text|json|github|junit|sarif]
                      [--fail-on-warn] [--allow-empty] [--client apply|create]
                                  run the policies on manifests offline (files, nested directories, Lists),
                                  after the API server's defaults and rollout-guard's mutation, as applied
                                  by kubectl apply (or by a client that records no intent)
                                  (exit 0 clean, 1 denied or warned with --fail-on-warn, 2 input error)
  rollout-guard test [DIR]        run the _test.rego files of DIR (default: the built-in policies)
  rollout-guard selftest [--namespace NS] [--kubeconfig FILE]
                                  check through the API server that both webhooks answer in NS, by
                                  server-side dry runs (exit 0 both answer, 1 not, 2 error); helm test runs it
  rollout-guard status [-n NAMESPACE] [-o text|json] KIND/NAME
                                  one workload's story: its revisions with their images and the watcher's
                                  marks, the last action and rollout-guard's Events, the exceptions in force,
                                  the policies' verdict now (also as the kubectl plugin kubectl-rollout_guard:
                                  kubectl rollout-guard status deployment/web)
  rollout-guard audit [-n NAMESPACE] [--config FILE] [-o text|json|github|junit|sarif] [--fail-on-warn]
                                  run the cluster's policies (built-ins, RolloutPolicies, exceptions) on the
                                  Deployments, StatefulSets and DaemonSets already running there, as they run
                                  (exit 0 clean, 1 a workload would be denied today, 2 error)
  rollout-guard version           print the version

Run "rollout-guard COMMAND --help" for the flags of a command.
`
