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
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rollout-guard/rollout-guard/audit"
	"github.com/rollout-guard/rollout-guard/policies/check"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// runAudit is `rollout-guard audit [-n NS] [--config FILE] [-o text|json|github] [--fail-on-warn]`: the policies in
// force in a live cluster (built-ins with the config's settings, its RolloutPolicies and RolloutPolicyExceptions),
// run on the Deployments, StatefulSets and DaemonSets already running there, as they run.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollout-guard audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	namespace := fs.String("n", "", "audit one namespace (default: all)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig; empty means in-cluster or $KUBECONFIG")
	configFile := fs.String("config", "", "rollout-guard config file: the cluster's, for its built-in policy settings and skipped namespaces")
	output := fs.String("o", "text", "output format: text, json, github, junit or sarif")
	failOnWarn := fs.Bool("fail-on-warn", false, "exit 1 when a policy warns, as when one denies")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 || !check.ValidFormat(*output) {
		fmt.Fprintln(stderr, "usage: rollout-guard audit [-n NAMESPACE] [--config FILE] [-o text|json|github|junit|sarif] [--fail-on-warn] [--kubeconfig FILE]")
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintln(stderr, "rollout-guard audit:", err)
		return exitUsage
	}
	opts, err := offlineOptions(*configFile)
	if err != nil {
		return fail(err)
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		return fail(err)
	}
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return fail(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return fail(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	res, err := audit.Run(ctx, c, opts, *namespace, audit.Pace{})
	if err != nil {
		return fail(err)
	}
	for _, err := range res.Errors {
		fmt.Fprintln(stderr, "rollout-guard audit:", err)
	}
	findings, errs := res.Findings, len(res.Errors)
	denied, warned := 0, 0
	for _, f := range findings {
		if f.Denied() {
			denied++
		}
		if f.Warned() {
			warned++
		}
	}
	switch *output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"findings": findings, "workloads": len(findings), "denied": denied, "warned": warned})
	case "github":
		printGitHub(stdout, findings)
	case "junit", "sarif":
		var msgs []string
		for _, e := range res.Errors {
			msgs = append(msgs, e.Error())
		}
		if err := writeReport(stdout, *output, check.Run{Name: "rollout-guard audit", Version: version, Live: true, FailOnWarn: *failOnWarn, Errors: msgs}, findings); err != nil {
			return fail(err)
		}
	default:
		printFindings(stdout, findings, func(f check.Finding) string { return f.Namespace })
		fmt.Fprintf(stdout, "%d workloads audited, %d would be denied, %d warned\n", len(findings), denied, warned)
	}
	switch {
	case errs > 0:
		return exitUsage
	case denied > 0 || (*failOnWarn && warned > 0):
		return exitViolations
	}
	return exitClean
}
