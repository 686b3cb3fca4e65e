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
	fs.Var(&inputs, "f", "manifest file, directory (nested; a Helm chart or a kustomization in it is rendered) or - for standard input (repeatable)")
	fs.Var(&policyPaths, "policy", "RolloutPolicy manifest file or directory (repeatable)")
	fs.Var(&exceptionPaths, "exception", "RolloutPolicyException manifest file or directory (repeatable)")
	var render check.Render
	fs.Var((*stringList)(&render.ValuesFiles), "values", "Helm values file for the charts among the inputs, merged in order over their values.yaml (repeatable)")
	fs.StringVar(&render.Release, "release-name", "", "release name the charts are rendered for (default release-name, as helm template)")
	fs.StringVar(&render.Namespace, "namespace", "", "namespace the charts are rendered for (default default)")
	output := fs.String("o", "text", "output format: text, json, github (GitHub Actions annotations), junit (JUnit XML) or sarif (SARIF 2.1.0)")
	failOnWarn := fs.Bool("fail-on-warn", false, "exit 1 when a policy warns, as when one denies")
	allowEmpty := fs.Bool("allow-empty", false, "an input without any apps/v1 Deployment, StatefulSet or DaemonSet is not an error")
	configFile := fs.String("config", "", "rollout-guard config file, for the same defaults and policy settings as the cluster")
	client := fs.String("client", string(check.ClientApply), "how the manifests reach the cluster: apply (kubectl apply, Helm 4, GitOps: what was written is kept) "+
		"or create (kubectl create/replace, Helm 3, client-go: a value equal to the API default counts as unset)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if len(inputs) == 0 || fs.NArg() > 0 || !check.ValidFormat(*output) || (*client != string(check.ClientApply) && *client != string(check.ClientCreate)) {
		fmt.Fprintln(stderr, "usage: rollout-guard check -f FILE|DIR|- [-f ...] [--policy FILE|DIR] [--exception FILE|DIR] [-o text|json|github|junit|sarif] [--fail-on-warn] [--allow-empty] [--config FILE] [--client apply|create] [--values FILE] [--release-name NAME] [--namespace NS]")
		return exitUsage
	}
	opts, err := offlineOptions(*configFile)
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard check:", err)
		return exitUsage
	}
	setup := check.Setup{Client: check.Client(*client)}
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
	// Every input error is reported, not only the first: a CI run should show them all at once.
	var findings []check.Finding
	var errMsgs []string
	report := func(err error) {
		for _, e := range splitErrors(err) {
			fmt.Fprintln(stderr, "rollout-guard check:", e)
			errMsgs = append(errMsgs, e.Error())
		}
	}
	for _, in := range inputs {
		docs, err := render.Read(in, stdin)
		report(err)
		for _, d := range docs {
			f, err := checker.Check(ctx, d)
			report(err)
			if f != nil {
				findings = append(findings, *f)
			}
		}
	}
	if len(findings) == 0 && len(errMsgs) == 0 && !*allowEmpty {
		report(fmt.Errorf("no apps/v1 Deployment, StatefulSet or DaemonSet in %s; pass --allow-empty if that is expected", strings.Join(inputs, ", ")))
	}
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
		_ = enc.Encode(map[string]any{"findings": findings, "workloads": len(findings), "denied": denied, "warned": warned, "inputErrors": len(errMsgs)})
	case "github":
		printGitHub(stdout, findings)
	case "junit", "sarif":
		if err := writeReport(stdout, *output, check.Run{Name: "rollout-guard check", Version: version, FailOnWarn: *failOnWarn, Errors: errMsgs}, findings); err != nil {
			fmt.Fprintln(stderr, "rollout-guard check:", err)
			return exitUsage
		}
	default:
		printFindings(stdout, findings, check.Finding.Where)
		fmt.Fprintf(stdout, "%d workloads checked, %d denied, %d warned\n", len(findings), denied, warned)
	}
	switch {
	case len(errMsgs) > 0:
		return exitUsage
	case denied > 0 || (*failOnWarn && warned > 0):
		return exitViolations
	}
	return exitClean
}

// splitErrors unwraps errors.Join, so that each input error is a line of its own.
func splitErrors(err error) []error {
	if err == nil {
		return nil
	}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range joined.Unwrap() {
			out = append(out, splitErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// writeReport writes the findings as JUnit XML or SARIF.
func writeReport(w io.Writer, format string, run check.Run, findings []check.Finding) error {
	if format == "junit" {
		return check.WriteJUnit(w, run, findings)
	}
	return check.WriteSARIF(w, run, findings)
}

// printGitHub writes GitHub Actions workflow commands: a denial is an error and a policy warning a warning, each on
// the file and line where its workload starts, so that they show on the pull request's diff.
func printGitHub(w io.Writer, findings []check.Finding) {
	for _, f := range findings {
		for _, v := range f.Violations {
			level := "warning"
			if v.Enforcement == policies.Deny {
				level = "error"
			}
			fmt.Fprintf(w, "::%s file=%s,line=%d,title=%s::%s\n", level, ghProperty(f.File), max(f.Line, 1),
				ghProperty(fmt.Sprintf("rollout-guard %s %s/%s", v.Policy, f.Kind, f.Name)), ghData(policies.Describe(v)))
		}
	}
}

// ghData and ghProperty escape a workflow command's message and property values as GitHub's toolkit does.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// printFindings writes each finding under a line that names it (where) and its verdict.
func printFindings(w io.Writer, findings []check.Finding, where func(check.Finding) string) {
	for _, f := range findings {
		verdict := "admitted"
		if f.Denied() {
			verdict = "DENIED"
		}
		fmt.Fprintf(w, "%s %s/%s: %s\n", where(f), f.Kind, f.Name, verdict)
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

// runTest is `rollout-guard test [DIR]`: the Rego tests of DIR, or of the built-in policies; with --suite, the
// suites of RolloutPolicy manifests.
func runTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("rollout-guard test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	suite := fs.String("suite", "", "a suite file, or a directory whose suite.yaml files to run: RolloutPolicy manifests and the verdicts expected of them")
	configFile := fs.String("config", "", "rollout-guard config file, for the cluster's defaults and policy settings (with --suite)")
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 || (*suite != "" && fs.NArg() > 0) {
		fmt.Fprintln(stderr, "usage: rollout-guard test [DIR] | rollout-guard test --suite FILE|DIR [--config FILE]")
		return exitUsage
	}
	if *suite != "" {
		return runSuites(ctx, *suite, *configFile, stdout, stderr)
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

// offlineOptions are the built-in options overlaid with the config file, if any, as the cluster's rollout-guard
// would load and validate them: check and suites judge with the same defaults and policy settings.
func offlineOptions(configFile string) (config.Options, error) {
	opts := config.Default()
	if configFile != "" {
		if err := opts.LoadFile(configFile); err != nil {
			return opts, err
		}
	}
	if err := opts.Validate(); err != nil {
		return opts, fmt.Errorf("invalid options: %w", err)
	}
	return opts, nil
}

// runSuites runs every suite of path and reports each case.
func runSuites(ctx context.Context, path, configFile string, stdout, stderr io.Writer) int {
	opts, err := offlineOptions(configFile)
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard test:", err)
		return exitUsage
	}
	files, err := check.FindSuites(path)
	if err != nil {
		fmt.Fprintln(stderr, "rollout-guard test:", err)
		return exitUsage
	}
	passed, failed := 0, 0
	for _, f := range files {
		results, err := check.RunSuite(ctx, opts, f)
		if err != nil {
			fmt.Fprintln(stderr, "rollout-guard test:", err)
			return exitUsage
		}
		for _, r := range results {
			if r.Passed {
				passed++
				fmt.Fprintf(stdout, "PASS %s: %s\n", r.Suite, r.Case)
				continue
			}
			failed++
			fmt.Fprintf(stdout, "FAIL %s: %s\n    %s\n", r.Suite, r.Case, strings.Join(r.Failures, "\n    "))
		}
	}
	fmt.Fprintf(stdout, "suites: %d passed, %d failed\n", passed, failed)
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
