package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
	"github.com/rollout-guard/rollout-guard/status"
)

// runStatus is `rollout-guard status [-n NS] [-o text|json] [--kubeconfig FILE] KIND/NAME`, also run as the kubectl
// plugin `kubectl rollout-guard status ...` (the binary named kubectl-rollout_guard on PATH).
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollout-guard status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	namespace := fs.String("n", "", "namespace (default: the kubeconfig context's, else default)")
	output := fs.String("o", "text", "output format: text or json")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig; empty means in-cluster or $KUBECONFIG")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 || (*output != "text" && *output != "json") {
		fmt.Fprintln(stderr, "usage: rollout-guard status [-n NAMESPACE] [-o text|json] [--kubeconfig FILE] KIND/NAME")
		return exitUsage
	}
	kind, name, err := status.ParseRef(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard status:", err)
		return exitUsage
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard status:", err)
		return exitUsage
	}
	if *namespace == "" {
		*namespace = contextNamespace(*kubeconfig)
	}
	warnings := &status.Warnings{}
	cfg.WarningHandler = warnings
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fmt.Fprintln(stderr, "rollout-guard status:", err)
		return exitUsage
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		fmt.Fprintln(stderr, "rollout-guard status:", err)
		return exitUsage
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard status:", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	report, err := status.Gather(ctx, c, warnings, kind, *namespace, name)
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard status:", err)
		return exitViolations
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(report)
	} else {
		report.Text(stdout)
	}
	return exitClean
}

// contextNamespace is the namespace of the kubeconfig's current context, as kubectl defaults to it.
func contextNamespace(path string) string {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	ns, _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).Namespace()
	if err != nil || ns == "" {
		return "default"
	}
	return ns
}
