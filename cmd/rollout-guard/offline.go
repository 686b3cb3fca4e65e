package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies"
	"github.com/rollout-guard/rollout-guard/policies/check"
	"github.com/rollout-guard/rollout-guard/webhook"
)

// Exit codes of check and test.
const (
	exitClean      = 0
	exitViolations = 1
	exitUsage      = 2
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// runCheck is `rollout-guard check -f FILE|DIR|- [--policy FILE|DIR] [-o text|json] [--config FILE]`.
func runCheck(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollout-guard check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var inputs, policyPaths, exceptionPaths stringList
	fs.Var(&inputs, "f", "manifest file, directory or - for standard input (repeatable)")
	fs.Var(&policyPaths, "policy", "RolloutPolicy manifest file or directory (repeatable)")
	fs.Var(&exceptionPaths, "exception", "RolloutPolicyException manifest file or directory (repeatable)")
	output := fs.String("o", "text", "output format: text or json")
	configFile := fs.String("config", "", "rollout-guard config file, for the same defaults and policy settings as the cluster")
	client := fs.String("client", string(check.ClientApply), "how the manifests reach the cluster: apply (kubectl apply, Helm 4, GitOps: what was written is kept) "+
		"or create (kubectl create/replace, Helm 3, client-go: a value equal to the API default counts as unset)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if len(inputs) == 0 || fs.NArg() > 0 || (*output != "text" && *output != "json") || (*client != string(check.ClientApply) && *client != string(check.ClientCreate)) {
		fmt.Fprintln(stderr, "usage: rollout-guard check -f FILE|DIR|- [-f ...] [--policy FILE|DIR] [--exception FILE|DIR] [-o text|json] [--config FILE] [--client apply|create]")
		return exitUsage
	}
	opts := config.Default()
	if *configFile != "" {
		if err := opts.LoadFile(*configFile); err != nil {
			fmt.Fprintln(stderr, "rollout-guard check:", err)
			return exitUsage
		}
	}
	if err := opts.Validate(); err != nil {
		fmt.Fprintln(stderr, "rollout-guard check: invalid options:", err)
		return exitUsage
	}
	setup := check.Setup{Client: check.Client(*client)}
	var err error
	if setup.Policies, err = readAll(policyPaths, check.ReadPolicies); err == nil {
		setup.Exceptions, err = readAll(exceptionPaths, check.ReadExceptions)
	}
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard check:", err)
		return exitUsage
	}
	checker, err := check.New(ctx, opts, setup)
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard check:", err)
		return exitUsage
	}
	var findings []check.Finding
	for _, in := range inputs {
		docs, err := check.Read(in, stdin)
		if err != nil {
			fmt.Fprintln(stderr, "rollout-guard check:", err)
			return exitUsage
		}
		for _, d := range docs {
			f, err := checker.Check(ctx, d)
			if err != nil {
				fmt.Fprintln(stderr, "rollout-guard check:", err)
				return exitUsage
			}
			if f != nil {
				findings = append(findings, *f)
			}
		}
	}
	denied := 0
	for _, f := range findings {
		if f.Denied() {
			denied++
		}
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"findings": findings, "workloads": len(findings), "denied": denied})
	} else {
		printFindings(stdout, findings)
		fmt.Fprintf(stdout, "%d workloads checked, %d denied\n", len(findings), denied)
	}
	if denied > 0 {
		return exitViolations
	}
	return exitClean
}

func printFindings(w io.Writer, findings []check.Finding) {
	for _, f := range findings {
		verdict := "admitted"
		if f.Denied() {
			verdict = "DENIED"
		}
		fmt.Fprintf(w, "%s (document %d) %s/%s: %s\n", f.File, f.Document, f.Kind, f.Name, verdict)
		for _, v := range f.Violations {
			fmt.Fprintf(w, "  %s: %s\n", v.Enforcement, policies.Describe(v))
		}
		for _, warning := range f.Warnings {
			fmt.Fprintf(w, "  note: %s\n", warning)
		}
		for _, m := range f.Mutations {
			fmt.Fprintf(w, "  mutation: %s\n", m)
		}
	}
}

// runTest is `rollout-guard test [DIR]`: the Rego tests of DIR, or of the built-in policies.
func runTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollout-guard test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: rollout-guard test [DIR]")
		return exitUsage
	}
	var files map[string]string
	var err error
	if fs.NArg() == 1 {
		files, err = policies.ReadRegoDir(fs.Arg(0))
	} else {
		files, err = policies.BuiltInFiles()
	}
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard test:", err)
		return exitUsage
	}
	results, err := policies.RunTests(ctx, files)
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard test:", err)
		return exitUsage
	}
	failed := 0
	for _, r := range results {
		if r.Passed {
			fmt.Fprintf(stdout, "PASS %s\n", r.Name)
			continue
		}
		failed++
		fmt.Fprintf(stdout, "FAIL %s: %s\n", r.Name, r.Detail)
	}
	fmt.Fprintf(stdout, "rego: %d passed, %d failed\n", len(results)-failed, failed)
	if len(results) == 0 {
		fmt.Fprintln(stderr, "rollout-guard test: no test rules found")
		return exitUsage
	}
	if failed > 0 {
		return exitViolations
	}
	return exitClean
}

// readAll reads the objects of every path.
func readAll[T any](paths []string, read func(string) ([]T, error)) ([]T, error) {
	var out []T
	for _, p := range paths {
		objs, err := read(p)
		if err != nil {
			return nil, err
		}
		out = append(out, objs...)
	}
	return out, nil
}

// runSelfTest is `rollout-guard selftest [--namespace NS] [--kubeconfig FILE]`.
func runSelfTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollout-guard selftest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	namespace := fs.String("namespace", "default", "namespace to dry-run Deployments in: one the webhooks select")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig; empty means in-cluster or $KUBECONFIG")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard selftest:", err)
		return exitUsage
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard selftest:", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := webhook.SelfTest(ctx, c, *namespace); err != nil {
		fmt.Fprintln(stderr, "rollout-guard selftest: FAIL:", err)
		return exitViolations
	}
	fmt.Fprintf(stdout, "rollout-guard selftest: both webhooks answered in namespace %s\n", *namespace)
	return exitClean
}
