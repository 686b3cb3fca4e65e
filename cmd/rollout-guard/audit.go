package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	output := fs.String("o", "text", "output format: text, json, or github")
	failOnWarn := fs.Bool("fail-on-warn", false, "exit 1 when a policy warns, as when one denies")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 || !slices.Contains([]string{"text", "json", "github"}, *output) {
		fmt.Fprintln(stderr, "usage: rollout-guard audit [-n NAMESPACE] [--config FILE] [-o text|json|github] [--fail-on-warn] [--kubeconfig FILE]")
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
	setup := check.Setup{Client: check.ClientLive}
	var rps v1alpha1.RolloutPolicyList
	if err := c.List(ctx, &rps); err != nil && !meta.IsNoMatchError(err) {
		return fail(fmt.Errorf("list RolloutPolicies: %w", err))
	}
	for i := range rps.Items {
		setup.Policies = append(setup.Policies, &rps.Items[i])
	}
	var exceptions v1alpha1.RolloutPolicyExceptionList
	if err := c.List(ctx, &exceptions, client.InNamespace(*namespace)); err != nil && !meta.IsNoMatchError(err) {
		return fail(fmt.Errorf("list RolloutPolicyExceptions: %w", err))
	}
	for i := range exceptions.Items {
		setup.Exceptions = append(setup.Exceptions, &exceptions.Items[i])
	}
	checker, err := check.New(ctx, opts, setup)
	if err != nil {
		return fail(err)
	}
	docs, err := liveWorkloads(ctx, c, *namespace, opts.SkippedNamespaces(), opts.Policies.DisableLabel)
	if err != nil {
		return fail(err)
	}
	var findings []check.Finding
	errs := 0
	for _, d := range docs {
		f, err := checker.Check(ctx, d)
		if err != nil {
			fmt.Fprintln(stderr, "rollout-guard audit:", err)
			errs++
			continue
		}
		if f != nil {
			findings = append(findings, *f)
		}
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
		_ = enc.Encode(map[string]any{"findings": findings, "workloads": len(findings), "denied": denied, "warned": warned})
	case "github":
		printGitHub(stdout, findings)
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

// liveWorkloads reads the cluster's Deployments, StatefulSets and DaemonSets, page by page, as documents that know
// their namespace's labels, leaving out the namespaces the webhooks leave alone.
func liveWorkloads(ctx context.Context, c client.Client, namespace string, skipped []string, disableLabel string) ([]check.Document, error) {
	var namespaces corev1.NamespaceList
	if err := c.List(ctx, &namespaces); err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	nsLabels := map[string]map[string]string{}
	for _, ns := range namespaces.Items {
		if !slices.Contains(skipped, ns.Name) && (disableLabel == "" || ns.Labels[disableLabel] != "disabled") {
			nsLabels[ns.Name] = ns.Labels
			if nsLabels[ns.Name] == nil {
				nsLabels[ns.Name] = map[string]string{}
			}
		}
	}
	var docs []check.Document
	add := func(kind string, obj client.Object) error {
		labels, ok := nsLabels[obj.GetNamespace()]
		if !ok {
			return nil
		}
		obj.SetManagedFields(nil)
		data, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return err
		}
		m["apiVersion"], m["kind"] = "apps/v1", kind
		delete(m, "status")
		if data, err = json.Marshal(m); err != nil {
			return err
		}
		docs = append(docs, check.Document{File: obj.GetNamespace(), Index: len(docs) + 1, Data: data, NamespaceLabels: labels})
		return nil
	}
	for _, list := range []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &appsv1.DaemonSetList{}} {
		for cont := ""; ; {
			if err := c.List(ctx, list, client.InNamespace(namespace), client.Limit(500), client.Continue(cont)); err != nil {
				return nil, fmt.Errorf("list workloads: %w", err)
			}
			var err error
			switch l := list.(type) {
			case *appsv1.DeploymentList:
				for i := range l.Items {
					err = errors.Join(err, add("Deployment", &l.Items[i]))
				}
			case *appsv1.StatefulSetList:
				for i := range l.Items {
					err = errors.Join(err, add("StatefulSet", &l.Items[i]))
				}
			case *appsv1.DaemonSetList:
				for i := range l.Items {
					err = errors.Join(err, add("DaemonSet", &l.Items[i]))
				}
			}
			if err != nil {
				return nil, err
			}
			if cont = list.GetContinue(); cont == "" {
				break
			}
		}
	}
	return docs, nil
}
