package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	promparser "github.com/prometheus/prometheus/promql/parser"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
	"github.com/rollout-guard/rollout-guard/webhook"
)

// helm runs Helm 3; helm4 Helm 4, which applies server-side.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return helmBinary(t, "helm", args...)
}

func helm4(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return helmBinary(t, filepath.Join("helm4", "helm"), args...)
}

func helmBinary(t *testing.T, binary string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(suite.cluster.BinDir, binary), append(args, "--kubeconfig", suite.cluster.Kubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	t.Logf("helm %s\n%s", strings.Join(args, " "), out)
	return string(out), err
}

func chartDir() string { return filepath.Join(suite.repo, "charts", "rollout-guard") }

// documents splits rendered YAML and returns the documents of a kind.
func documents(t *testing.T, rendered, kind string) [][]byte {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufioReader(rendered))
	var out [][]byte
	for {
		doc, err := r.Read()
		if err != nil {
			return out
		}
		var head struct {
			Kind string `json:"kind"`
		}
		if yaml.Unmarshal(doc, &head) == nil && head.Kind == kind {
			out = append(out, doc)
		}
	}
}

// renderedConfig extracts rollout-guard's config file from a rendering and checks it loads and validates.
func renderedConfig(t *testing.T, rendered string) config.Options {
	t.Helper()
	cms := documents(t, rendered, "ConfigMap")
	if len(cms) == 0 {
		t.Fatal("no ConfigMap rendered")
	}
	var cm struct {
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(cms[0], &cm); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := config.Default()
	if err := opts.LoadFile(path); err != nil {
		t.Fatalf("the chart's config does not load: %v", err)
	}
	if err := opts.Validate(); err != nil {
		t.Fatalf("the chart's config is invalid: %v", err)
	}
	return opts
}

func TestChartRendersLintsAndValidates(t *testing.T) {
	t.Parallel()
	if out, err := helm(t, "lint", "--strict", chartDir()); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	withCM, err := helm(t, "template", "rg", chartDir(), "--namespace", "rollout-guard", "--api-versions", "cert-manager.io/v1")
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	// Without cert-manager's CRDs, cert-manager mode stops with a message that says what to do.
	if out, err := helm(t, "template", "rg", chartDir(), "--namespace", "rollout-guard"); err == nil ||
		!strings.Contains(out, "no cert-manager CRDs") || !strings.Contains(out, "certManager.enabled=false") {
		t.Errorf("cert-manager mode without cert-manager's CRDs rendered, or said too little:\n%s", out)
	}
	selfManaged, err := helm(t, "template", "rg", chartDir(), "--namespace", "rollout-guard", "--set", "certManager.enabled=false")
	if err != nil {
		t.Fatalf("helm template certManager.enabled=false: %v", err)
	}
	if out, err := helm(t, "template", "rg", chartDir(), "--set", "webhook.replicas=three"); err == nil || !strings.Contains(out, "/webhook/replicas") {
		t.Errorf("a wrong value type was not refused by the schema:\n%s", out)
	}
	// What the binary would refuse at start, refused at install (the schema's sync with config.Options is a unit test).
	for bad, named := range map[string]string{"config.rollback.circuitBreaker.maxStall=3": "maxStall", "config.rollback.imagePullGracePeriod=sixty": "sixty",
		"metrics.serviceMonitor.enable=true": "enable", "config.policies.builtIns.image-pinnd.enforcement=deny": "image-pinnd"} {
		if out, err := helm(t, "template", "rg", chartDir(), "--set", "certManager.enabled=false", "--set", bad); err == nil || !strings.Contains(out, named) {
			t.Errorf("--set %s was not refused by the schema, naming %s:\n%s", bad, named, out)
		}
	}
	if out, err := helm(t, "template", "rg", chartDir(), "--set", "webhook.mutatingTimeoutSeconds=5"); err == nil {
		t.Errorf("a mutating timeout above 2 s was accepted:\n%s", out)
	}

	checkRenderedCRDs(t, withCM)

	// cert-manager mode: the CA chain is cert-manager's, the configurations ask for injection, no caBundle is templated.
	opts := renderedConfig(t, withCM)
	if opts.Webhook.SelfManagedCerts.Enabled {
		t.Error("self-managed certificates enabled alongside cert-manager")
	}
	var serving *cmapi.Certificate
	for _, doc := range documents(t, withCM, "Certificate") {
		var c cmapi.Certificate
		if err := yaml.UnmarshalStrict(doc, &c); err != nil {
			t.Fatalf("rendered Certificate is not a cert-manager Certificate: %v", err)
		}
		if !c.Spec.IsCA {
			serving = &c
		}
	}
	if serving == nil || !slices.Contains(serving.Spec.DNSNames, "rg-rollout-guard-webhook.rollout-guard.svc") || serving.Spec.IssuerRef.Name != "rg-rollout-guard-ca" {
		t.Fatalf("serving Certificate = %+v", serving)
	}
	if strings.Contains(withCM, "caBundle:") || !strings.Contains(withCM, "cert-manager.io/inject-ca-from: rollout-guard/"+serving.Name) {
		t.Error("webhook configurations must carry inject-ca-from and no caBundle")
	}
	// Self-managed mode: no cert-manager objects, and rollout-guard is told to manage its certificates.
	if len(documents(t, selfManaged, "Certificate")) != 0 || !renderedConfig(t, selfManaged).Webhook.SelfManagedCerts.Enabled {
		t.Error("certManager.enabled=false still renders Certificates or leaves self-managed certificates off")
	}
	// The chart's rules and selectors are the ones dev mode registers.
	var chartV admissionregistrationv1.ValidatingWebhookConfiguration
	var chartM admissionregistrationv1.MutatingWebhookConfiguration
	if err := yaml.Unmarshal(documents(t, withCM, "ValidatingWebhookConfiguration")[0], &chartV); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(documents(t, withCM, "MutatingWebhookConfiguration")[0], &chartM); err != nil {
		t.Fatal(err)
	}
	devM, devV := webhook.Configurations(admissionregistrationv1.WebhookClientConfig{}, opts, admissionregistrationv1.Ignore)
	if !reflect.DeepEqual(chartM.Webhooks[0].Rules, devM.Webhooks[0].Rules) || !reflect.DeepEqual(chartV.Webhooks[0].Rules, devV.Webhooks[0].Rules) {
		t.Errorf("chart rules differ from the code's:\nchart %v / %v\ncode  %v / %v", chartM.Webhooks[0].Rules, chartV.Webhooks[0].Rules, devM.Webhooks[0].Rules, devV.Webhooks[0].Rules)
	}
	if !reflect.DeepEqual(chartM.Webhooks[0].NamespaceSelector, devM.Webhooks[0].NamespaceSelector) {
		t.Errorf("namespaceSelector: chart %v, code %v", chartM.Webhooks[0].NamespaceSelector, devM.Webhooks[0].NamespaceSelector)
	}
	m := chartM.Webhooks[0]
	if *m.FailurePolicy != admissionregistrationv1.Ignore || *m.TimeoutSeconds > 2 || *m.SideEffects != admissionregistrationv1.SideEffectClassNone || *m.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Errorf("mutating webhook settings: %+v", m)
	}
	checkCustomNamespaceSelector(t)
	checkAlertRules(t)
	checkAnalysisValues(t)
	checkDashboard(t)

	// Restricted pod security on every container.
	for _, doc := range documents(t, withCM, "Deployment") {
		s := string(doc)
		for _, want := range []string{"runAsNonRoot: true", "readOnlyRootFilesystem: true", "allowPrivilegeEscalation: false", "drop: [ALL]", "type: RuntimeDefault", "GOMEMLIMIT", "limits:"} {
			if !strings.Contains(s, want) {
				t.Errorf("a Deployment lacks %q", want)
			}
		}
	}
}

// A custom namespaceSelector narrows the webhooks' default one: kube-system and the release's namespace stay
// excluded, or a webhook pod could wait on its own webhook.
func checkCustomNamespaceSelector(t *testing.T) {
	t.Helper()
	rendered, err := helm(t, "template", "rg", chartDir(), "--namespace", "rg-sys", "--set", "certManager.enabled=false",
		"--set-json", `webhook.namespaceSelector={"matchLabels":{"team":"a"},"matchExpressions":[{"key":"env","operator":"NotIn","values":["lab"]}]}`)
	if err != nil {
		t.Fatalf("helm template with a custom namespaceSelector: %v\n%s", err, rendered)
	}
	var selectors []*metav1.LabelSelector
	var m admissionregistrationv1.MutatingWebhookConfiguration
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if yaml.Unmarshal(documents(t, rendered, "MutatingWebhookConfiguration")[0], &m) != nil || yaml.Unmarshal(documents(t, rendered, "ValidatingWebhookConfiguration")[0], &v) != nil {
		t.Fatal("cannot read the rendered webhook configurations")
	}
	for _, w := range m.Webhooks {
		selectors = append(selectors, w.NamespaceSelector)
	}
	for _, w := range v.Webhooks {
		selectors = append(selectors, w.NamespaceSelector)
	}
	for _, ls := range selectors {
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			t.Fatalf("rendered namespaceSelector %v: %v", ls, err)
		}
		for ns, want := range map[string]bool{"apps": true, "kube-system": false, "rg-sys": false, "kube-node-lease": false} {
			if got := sel.Matches(labels.Set{"kubernetes.io/metadata.name": ns, "team": "a"}); got != want {
				t.Errorf("namespaceSelector %s matches namespace %s of team a: %v, want %v", sel, ns, got, want)
			}
		}
		if sel.Matches(labels.Set{"kubernetes.io/metadata.name": "apps", "team": "b"}) || sel.Matches(labels.Set{"kubernetes.io/metadata.name": "apps", "team": "a", "env": "lab"}) {
			t.Errorf("namespaceSelector %s ignores the custom selector", sel)
		}
	}
	if out, err := helm(t, "template", "rg", chartDir(), "--set", "certManager.enabled=false", "--set-json", `webhook.namespaceSelector={"matchLabel":{"team":"a"}}`); err == nil ||
		!strings.Contains(out, "matchLabel") {
		t.Errorf("a misspelt namespaceSelector field was not refused by the schema:\n%s", out)
	}
}

// The alerts name the jobs the chart's Services make, so that a webhook or watcher that is down alerts, and a stall
// the watcher only reports (dry run, GitOps) alerts as one it could not roll back does.
func checkAlertRules(t *testing.T) {
	t.Helper()
	rendered, err := helm(t, "template", "rg", chartDir(), "--namespace", "rg-sys", "--set", "certManager.enabled=false", "--set", "metrics.prometheusRule.enabled=true")
	if err != nil {
		t.Fatalf("helm template with the PrometheusRule: %v\n%s", err, rendered)
	}
	var rule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert       string            `json:"alert"`
					Expr        string            `json:"expr"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(documents(t, rendered, "PrometheusRule")[0], &rule); err != nil {
		t.Fatal(err)
	}
	services := map[string]bool{}
	for _, doc := range documents(t, rendered, "Service") {
		var svc struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
		}
		if yaml.Unmarshal(doc, &svc) == nil {
			services[svc.Metadata.Name] = true
		}
	}
	exprs := map[string]string{}
	readme := mustReadFile(t, filepath.Join(chartDir(), "README.md"))
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			exprs[r.Alert] = r.Expr
			// Someone paged at night reads the description and follows the runbook.
			if r.Annotations["description"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("alert %s lacks a summary or a description", r.Alert)
			}
			if want := "/charts/rollout-guard/README.md#" + strings.ToLower(r.Alert); !strings.HasSuffix(r.Annotations["runbook_url"], want) {
				t.Errorf("alert %s: runbook_url %q, want one ending in %s", r.Alert, r.Annotations["runbook_url"], want)
			}
			if !strings.Contains(readme, "\n### "+r.Alert+"\n") {
				t.Errorf("alert %s has no runbook section in the chart README", r.Alert)
			}
		}
	}
	for _, alert := range []string{"RolloutGuardWebhookDown", "RolloutGuardWatcherDown"} {
		expr := exprs[alert]
		job := between(expr, `job="`, `"`)
		if !strings.HasPrefix(expr, "absent(up{") || !services[job] || !strings.Contains(expr, `namespace="rg-sys"`) {
			t.Errorf("%s: expr %q does not watch the up series of one of the chart's Services %v", alert, expr, services)
		}
	}
	if exprs["RolloutGuardAnalysisInconclusive"] == "" {
		t.Error("no alert for analyses that judge nothing (RolloutGuardAnalysisInconclusive)")
	}
	// Every alert is PromQL that Prometheus' own parser accepts.
	for alert, expr := range exprs {
		if _, err := promparser.NewParser(promparser.Options{}).ParseExpr(expr); err != nil {
			t.Errorf("alert %s: %v", alert, err)
		}
	}
	if !strings.Contains(exprs["RolloutGuardStallWithoutRollback"], "dryrun") {
		t.Errorf("RolloutGuardStallWithoutRollback ignores dry runs: %s", exprs["RolloutGuardStallWithoutRollback"])
	}
}

// The Prometheus values reach the watcher's config and mounts, the built-in analyses are valid RolloutAnalyses that
// the watcher can prepare (their PromQL is parsed here), and a Prometheus address without a scheme is refused.
func checkAnalysisValues(t *testing.T) {
	t.Helper()
	rendered, err := helm(t, "template", "rg", chartDir(), "--namespace", "rg-sys", "--set", "certManager.enabled=false",
		"--set", "analysis.prometheus.address=https://prometheus.monitoring:9090", "--set", "analysis.prometheus.bearerTokenSecret.name=prom-token",
		"--set", "analysis.prometheus.caSecret.name=prom-ca", "--set", "analysis.builtIns.errorRate.max=0.02")
	if err != nil {
		t.Fatalf("helm template with Prometheus values: %v\n%s", err, rendered)
	}
	p := renderedConfig(t, rendered).Analysis.Prometheus
	if p.Address != "https://prometheus.monitoring:9090" || p.BearerTokenFile != "/etc/rollout-guard/prometheus/token/token" || p.CAFile != "/etc/rollout-guard/prometheus/ca/ca.crt" || p.Timeout.Duration != 10*time.Second {
		t.Errorf("watcher's Prometheus config: %+v", p)
	}
	var watcher appsv1.Deployment
	for _, doc := range documents(t, rendered, "Deployment") {
		var d appsv1.Deployment
		if yaml.Unmarshal(doc, &d) == nil && d.Name == "rg-rollout-guard-watcher" {
			watcher = d
		}
	}
	mounts := map[string]string{}
	for _, m := range watcher.Spec.Template.Spec.Containers[0].VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	secrets := map[string]string{}
	for _, v := range watcher.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			secrets[v.Name] = v.Secret.SecretName
		}
	}
	if mounts["prometheus-token"] != "/etc/rollout-guard/prometheus/token" || secrets["prometheus-token"] != "prom-token" || secrets["prometheus-ca"] != "prom-ca" {
		t.Errorf("watcher mounts %v, Secret volumes %v", mounts, secrets)
	}
	analyses := documents(t, rendered, "RolloutAnalysis")
	if len(analyses) != 2 {
		t.Fatalf("%d built-in RolloutAnalyses rendered, want 2", len(analyses))
	}
	for _, doc := range analyses {
		var ra v1alpha1.RolloutAnalysis
		if err := yaml.UnmarshalStrict(doc, &ra); err != nil {
			t.Fatalf("a built-in analysis is not a RolloutAnalysis: %v", err)
		}
		if _, errs := ra.ToAnalysis(); len(errs) > 0 {
			t.Errorf("built-in analysis %s is invalid: %v", ra.Name, errs.ToAggregate())
		}
		if ra.Name == "http-error-rate" && ra.Spec.Queries[0].Max != "0.02" {
			t.Errorf("analysis.builtIns.errorRate.max did not reach %s: %+v", ra.Name, ra.Spec.Queries[0])
		}
	}
	if out, err := helm(t, "template", "rg", chartDir(), "--set", "certManager.enabled=false", "--set", "analysis.prometheus.address=prometheus:9090"); err == nil ||
		!strings.Contains(out, "address") {
		t.Errorf("a Prometheus address without a scheme was not refused by the schema:\n%s", out)
	}
	if out, err := helm(t, "template", "rg", chartDir(), "--set", "certManager.enabled=false", "--set", "analysis.builtIns.enabled=false"); err != nil || len(documents(t, out, "RolloutAnalysis")) != 0 {
		t.Errorf("analysis.builtIns.enabled=false still renders analyses (err %v)", err)
	}
}

// Every panel of the dashboard is filtered by the cluster, namespace and job variables, which rollout_guard_build_info
// feeds, and is PromQL that Prometheus' parser accepts.
func checkDashboard(t *testing.T) {
	t.Helper()
	var dash struct {
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal([]byte(mustReadFile(t, filepath.Join(chartDir(), "dashboards", "rollout-guard.json"))), &dash); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	vars := map[string]string{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = fmt.Sprint(v.Query)
	}
	for _, v := range []string{"cluster", "namespace", "job"} {
		if !strings.Contains(vars[v], "rollout_guard_build_info") {
			t.Errorf("dashboard variable %s = %q, want one read from rollout_guard_build_info", v, vars[v])
		}
	}
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, v := range []string{`cluster=~"$cluster"`, `namespace=~"$namespace"`, `job=~"$job"`} {
				if !strings.Contains(target.Expr, v) {
					t.Errorf("panel %q: %s is not filtered by %s", p.Title, target.Expr, v)
				}
			}
			if _, err := promparser.NewParser(promparser.Options{}).ParseExpr(strings.NewReplacer("$cluster", ".*", "$namespace", ".*", "$job", ".*").Replace(target.Expr)); err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
		}
	}
}

// between is the text of s after the first start, up to the next end.
func between(s, start, end string) string {
	_, after, _ := strings.Cut(s, start)
	in, _, _ := strings.Cut(after, end)
	return in
}

// helm install in both modes on the local cluster (cert-manager with Helm 3, self-managed with Helm 4), RBAC checked
// with kubectl auth can-i,
// rollout-guard run with the chart's ServiceAccount identity in self-managed mode, and
// helm uninstall leaving no webhook configuration behind.
func TestChartInstall(t *testing.T) {
	t.Parallel()
	if err := suite.cluster.InstallCertManagerCRDs(context.Background()); err != nil {
		t.Fatalf("cert-manager CRDs: %v", err)
	}
	// One mode with each Helm major: Helm 4 installs server-side.
	for _, mode := range []struct {
		name        string
		certManager bool
		helm        func(*testing.T, ...string) (string, error)
	}{{"cert-manager", true, helm}, {"self-managed", false, helm4}} {
		t.Run(mode.name, func(t *testing.T) {
			ns := namespace(t)
			release := "rg-" + ns[len(ns)-6:]
			full := release + "-rollout-guard"
			port := freeTCPPort(t)
			// Scoped to namespaces labelled for this test, and a short timeout: the in-cluster Service
			// cannot be reached here (no kube-proxy), so other tests must not wait on it.
			// crds.install=false: the suite installed the CRD already, and two releases cannot both own it.
			args := []string{"install", release, chartDir(), "--namespace", ns, "--set", "crds.install=false",
				"--set", fmt.Sprintf("certManager.enabled=%v", mode.certManager),
				"--set", "webhook.namespaceSelector.matchLabels.rollout-guard-chart-test=" + release,
				"--set", "webhook.timeoutSeconds=1", "--set", "webhook.mutatingTimeoutSeconds=1"}
			if !mode.certManager {
				args = append(args, "--set", fmt.Sprintf("webhook.url=https://127.0.0.1:%d", port))
			}
			if out, err := mode.helm(t, args...); err != nil {
				t.Fatalf("helm install: %v\n%s", err, out)
			}
			uninstalled := false
			t.Cleanup(func() {
				if !uninstalled {
					_, _ = mode.helm(t, "uninstall", release, "--namespace", ns)
				}
			})
			checkRBAC(t, ns, full, mode.certManager)
			if !mode.certManager {
				runWithChartIdentity(t, ns, release, full, port)
			}
			if out, err := mode.helm(t, "uninstall", release, "--namespace", ns, "--wait"); err != nil {
				t.Fatalf("helm uninstall: %v\n%s", err, out)
			}
			uninstalled = true
			for _, kind := range []string{"mutatingwebhookconfiguration", "validatingwebhookconfiguration"} {
				if r := kubectl(t, "", "get", kind, full); r.err == nil {
					t.Errorf("%s %s left behind after helm uninstall", kind, full)
				}
			}
		})
	}
}

func checkRBAC(t *testing.T, ns, full string, certManager bool) {
	t.Helper()
	webhookSA := "system:serviceaccount:" + ns + ":" + full + "-webhook"
	watcherSA := "system:serviceaccount:" + ns + ":" + full + "-watcher"
	checks := []struct {
		as, verb, resource, namespace string
		want                          bool
	}{
		{watcherSA, "patch", "deployments.apps", "default", true},
		{watcherSA, "watch", "replicasets.apps", "default", true},
		{watcherSA, "patch", "replicasets.apps", "default", true},
		{watcherSA, "list", "pods", "default", true},
		{watcherSA, "patch", "statefulsets.apps", "default", true},
		{watcherSA, "patch", "daemonsets.apps", "default", true},
		{watcherSA, "patch", "controllerrevisions.apps", "default", true},
		{watcherSA, "delete", "pods", "default", true},
		{watcherSA, "get", "pods", "default", true},
		{watcherSA, "create", "pods", "default", false},
		{watcherSA, "create", "events.events.k8s.io", "default", true},
		{watcherSA, "update", "leases.coordination.k8s.io", ns, true},
		{watcherSA, "update", "leases.coordination.k8s.io", "default", false},
		{watcherSA, "list", "secrets", "", false},
		{watcherSA, "delete", "deployments.apps", "default", false},
		{webhookSA, "list", "rolloutpolicies.rollout-guard.io", "", true},
		{webhookSA, "update", "rolloutpolicies.rollout-guard.io --subresource=status", "", true},
		{webhookSA, "watch", "namespaces", "", true},
		{webhookSA, "list", "controllerrevisions.apps", "default", true},
		{webhookSA, "watch", "rolloutpolicyexceptions.rollout-guard.io", "", true},
		{webhookSA, "update", "rolloutpolicyexceptions.rollout-guard.io --subresource=status", "default", true},
		{webhookSA, "create", "rolloutpolicyexceptions.rollout-guard.io", "default", false},
		{watcherSA, "create", "rolloutpolicyexceptions.rollout-guard.io", "default", false},
		{webhookSA, "list", "secrets", "", false},
		{webhookSA, "list", "secrets", ns, false},
		{webhookSA, "update", "deployments.apps", "default", false},
		{watcherSA, "watch", "rolloutanalyses.rollout-guard.io", "", true},
		{watcherSA, "list", "namespaces", "", true},
		{watcherSA, "create", "rolloutanalyses.rollout-guard.io", "", false},
		{"system:serviceaccount:default:nobody", "get", "rolloutanalyses.rollout-guard.io", "", false},
		// the audit: reads the policies in force, writes reports, never changes a policy
		{watcherSA, "watch", "rolloutpolicies.rollout-guard.io", "", true},
		{watcherSA, "list", "rolloutpolicyexceptions.rollout-guard.io", "", true},
		{watcherSA, "update", "rolloutpolicies.rollout-guard.io", "", false},
		{watcherSA, "update", "policyreports.wgpolicyk8s.io", "default", true},
		{watcherSA, "delete", "policyreports.wgpolicyk8s.io", "default", true},
		{webhookSA, "create", "policyreports.wgpolicyk8s.io", "default", false},
	}
	if !certManager {
		checks = append(checks,
			struct {
				as, verb, resource, namespace string
				want                          bool
			}{webhookSA, "create", "secrets", ns, true},
			struct {
				as, verb, resource, namespace string
				want                          bool
			}{webhookSA, "update", "mutatingwebhookconfigurations.admissionregistration.k8s.io/" + full, "", true})
	}
	for _, c := range checks {
		args := append([]string{"auth", "can-i", c.verb}, strings.Fields(c.resource)...)
		args = append(args, "--as", c.as)
		if c.namespace != "" {
			args = append(args, "-n", c.namespace)
		} else {
			args = append(args, "--all-namespaces")
		}
		r := kubectl(t, "", args...)
		if got := strings.TrimSpace(r.stdout) == "yes"; got != c.want {
			t.Errorf("%s can %s %s in %q: %v, want %v", c.as, c.verb, c.resource, c.namespace, got, c.want)
		}
	}
}

// runWithChartIdentity runs `rollout-guard webhook` with the chart's config
// and ServiceAccount token, serving at the chart's webhook.url.
func runWithChartIdentity(t *testing.T, ns, release, full string, port int) {
	t.Helper()
	dir := t.TempDir()
	token := strings.TrimSpace(mustKubectl(t, "", "-n", ns, "create", "token", full+"-webhook", "--duration=1h").stdout)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: %s, certificate-authority: %s}}]
users: [{name: sa, user: {token: %s}}]
contexts: [{name: sa, context: {cluster: local, user: sa}}]
current-context: sa
`, suite.cluster.Server, suite.cluster.CAFile, token)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config.yaml")
	cm := mustKubectl(t, "", "-n", ns, "get", "configmap", full, "-o", `jsonpath={.data.config\.yaml}`)
	if err := os.WriteFile(cfg, []byte(cm.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	metricsPort, healthPort := freeTCPPort(t), freeTCPPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, suite.binary, "webhook", "--config", cfg, "--kubeconfig", kubeconfig, "--namespace", ns,
		"--webhook-host", "127.0.0.1", "--webhook-port", strconv.Itoa(port), "--cert-dir", filepath.Join(dir, "certs"),
		"--metrics-addr", "127.0.0.1:"+strconv.Itoa(metricsPort), "--health-addr", "127.0.0.1:"+strconv.Itoa(healthPort))
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("rollout-guard (chart identity) log:\n%s", logs.String())
		}
	})
	cs := clientset(t)
	eventually(t, 60*time.Second, "the Secret created and the caBundle filled by rollout-guard", func(ctx context.Context) (bool, error) {
		if _, err := cs.CoreV1().Secrets(ns).Get(ctx, full+"-webhook-tls", metav1.GetOptions{}); err != nil {
			return false, err
		}
		m, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, full, metav1.GetOptions{})
		if err != nil || len(m.Webhooks[0].ClientConfig.CABundle) == 0 {
			return false, err
		}
		v, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, full, metav1.GetOptions{})
		return err == nil && len(v.Webhooks[0].ClientConfig.CABundle) > 0, err
	})
	target := namespace(t)
	mustKubectl(t, "", "label", "namespace", target, "rollout-guard-chart-test="+release)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	eventually(t, 30*time.Second, "the webhook serving", func(context.Context) (bool, error) {
		r, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort))
		return err == nil && r == 200, nil
	})
	mustKubectl(t, seed(t, "nginx-deployment.yaml"), "-n", target, "apply", "-f", "-")
	for _, hook := range []string{"mutating", "validating"} {
		if n := metric(t, metricsURL, "rollout_guard_admission_requests_total", map[string]string{"webhook": hook, "operation": "CREATE"}); n < 1 {
			t.Errorf("kubectl apply did not pass through the chart's %s webhook (requests %v)", hook, n)
		}
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// checkRenderedCRDs requires the chart to render every CRD of files/crds unchanged but for Helm's labels and the keep
// annotation (so helm upgrade upgrades them and helm uninstall spares RolloutPolicies), and none with crds.install=false.
func checkRenderedCRDs(t *testing.T, rendered string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(), "files", "crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in files/crds: %v", err)
	}
	got := map[string]apiextensionsv1.CustomResourceDefinition{}
	for _, doc := range documents(t, rendered, "CustomResourceDefinition") {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(doc, &crd); err != nil {
			t.Fatalf("rendered CRD: %v", err)
		}
		got[crd.Name] = crd
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var want apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &want); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		crd, ok := got[want.Name]
		switch {
		case !ok:
			t.Errorf("the chart does not render %s", want.Name)
		case !reflect.DeepEqual(crd.Spec, want.Spec):
			t.Errorf("the rendered %s differs from %s", want.Name, f)
		case crd.Annotations["helm.sh/resource-policy"] != "keep" || crd.Labels["app.kubernetes.io/managed-by"] != "Helm":
			t.Errorf("%s: annotations %v, labels %v", want.Name, crd.Annotations, crd.Labels)
		}
	}
	out, err := helm(t, "template", "rg", chartDir(), "--set", "crds.install=false", "--set", "certManager.enabled=false")
	if err != nil || len(documents(t, out, "CustomResourceDefinition")) != 0 {
		t.Errorf("crds.install=false still renders CRDs (err %v)", err)
	}
}
