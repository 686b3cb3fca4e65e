package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/rollout-guard/rollout-guard/config"
)

var errHelp = errors.New("help requested")

// parseOptions builds Options in order of precedence: built-in defaults,
// then the --config file, then flags given on the command line.
func parseOptions(cmd string, args []string, stderr io.Writer) (config.Options, *zap.Options, error) {
	opts := config.Default()
	logOpts := &zap.Options{}
	// The first pass finds --config; the second applies the flags over the
	// file, so only flags the user gave override it.
	var configFile string
	for pass := 0; pass < 2; pass++ {
		fs := flag.NewFlagSet("rollout-guard "+cmd, flag.ContinueOnError)
		fs.SetOutput(stderr)
		fs.StringVar(&configFile, "config", configFile, "YAML file with rollout-guard's options (flags override it)")
		bindFlags(fs, cmd, &opts)
		logOpts.BindFlags(fs)
		if pass == 0 {
			fs.SetOutput(io.Discard)
		}
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			if pass == 0 {
				continue
			}
			return opts, nil, errHelp
		}
		if err != nil {
			if pass == 0 {
				continue
			}
			return opts, nil, err
		}
		if fs.NArg() > 0 {
			return opts, nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
		}
		if pass == 0 && configFile != "" {
			if err := opts.LoadFile(configFile); err != nil {
				return opts, nil, err
			}
		}
	}
	if err := opts.Validate(); err != nil {
		return opts, nil, fmt.Errorf("invalid options: %w", err)
	}
	return opts, logOpts, nil
}

func bindFlags(fs *flag.FlagSet, cmd string, o *config.Options) {
	fs.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig file (default: in-cluster config or $KUBECONFIG)")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "namespace rollout-guard runs in; never mutated or validated")
	switch cmd {
	case "webhook":
		fs.StringVar(&o.Webhook.Host, "webhook-host", o.Webhook.Host, "address to serve admission requests on")
		fs.IntVar(&o.Webhook.Port, "webhook-port", o.Webhook.Port, "port to serve admission requests on (TLS)")
		fs.StringVar(&o.Webhook.CertDir, "cert-dir", o.Webhook.CertDir, "directory with tls.crt and tls.key, reloaded on change")
		fs.StringVar(&o.Webhook.MetricsAddr, "metrics-addr", o.Webhook.MetricsAddr, "address of the Prometheus /metrics endpoint (0 disables)")
		fs.StringVar(&o.Webhook.HealthAddr, "health-addr", o.Webhook.HealthAddr, "address of /healthz and /readyz (0 disables)")
		fs.BoolVar(&o.Dev.Enabled, "dev", o.Dev.Enabled, "development mode: self-signed certificates and webhook configurations registered by URL")
		fs.StringVar(&o.Dev.FailurePolicy, "dev-failure-policy", o.Dev.FailurePolicy, "failurePolicy of the validating webhook in dev mode (Ignore or Fail)")
	case "watcher":
		fs.StringVar(&o.Watcher.MetricsAddr, "metrics-addr", o.Watcher.MetricsAddr, "address of the Prometheus /metrics endpoint (0 disables)")
		fs.StringVar(&o.Watcher.HealthAddr, "health-addr", o.Watcher.HealthAddr, "address of /healthz and /readyz (0 disables)")
		fs.StringVar(&o.Watcher.PprofAddr, "pprof-addr", o.Watcher.PprofAddr, "address of net/http/pprof (0 disables)")
		fs.BoolVar(&o.Watcher.LeaderElection, "leader-elect", o.Watcher.LeaderElection, "elect a leader so that only one watcher acts")
		fs.StringVar(&o.Rollback.Mode, "rollback-mode", o.Rollback.Mode, "enforce (roll back) or dryrun (only report)")
		fs.StringVar(&o.Rollback.Selector, "selector", o.Rollback.Selector, "label selector of the workloads (Deployments, StatefulSets, DaemonSets) to watch (empty: all)")
	}
}

func newLogger(o *zap.Options, out io.Writer) logr.Logger {
	return zap.New(zap.UseFlagOptions(o), zap.WriteTo(out))
}

// restConfig loads the kubeconfig at path, or the in-cluster / $KUBECONFIG
// configuration when path is empty.
func restConfig(path string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("kubeconfig: %w", err)
		}
		rules.ExplicitPath = path
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return cfg, nil
}
