package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/rollout-guard/rollout-guard/webhook/certs"
)

// Runs last (files run in name order): it upgrades, then removes, the suite's release.

// helm upgrade to a chart whose CRD gained a column, with a changed value, upgrades the CRD, rolls the pods and keeps
// admission working with the same certificates; helm uninstall then leaves no webhook configuration, Secret or
// cluster-wide RBAC behind, and keeps the CRD.
func TestHelmUpgradeThenUninstall(t *testing.T) {
	ctx := context.Background()
	c := suite.cluster
	home := filepath.Join(c.Dir, "helm")
	podsBefore := kubectl(t, "-n", "rollout-guard", "get", "pods", "-l", "app.kubernetes.io/component=webhook", "-o", "name")
	caBefore := kubectl(t, "get", "mutatingwebhookconfigurations", "-l", "app.kubernetes.io/instance="+releaseName,
		"-o", "jsonpath={.items[0].webhooks[0].clientConfig.caBundle}")
	next := nextChartWithCRDColumn(t, "Upgraded")
	if _, err := c.Helm(ctx, home, "upgrade", releaseName, next, "--namespace", "rollout-guard", "--reuse-values",
		"--set", "webhook.gogc=400", "--wait", "--timeout", "4m"); err != nil {
		t.Fatal(err)
	}
	if cols := kubectl(t, "get", "crd", "rolloutpolicies.rollout-guard.io", "-o",
		"jsonpath={.spec.versions[0].additionalPrinterColumns[*].name}"); !strings.Contains(cols, "Upgraded") {
		t.Errorf("helm upgrade did not upgrade the CRD: its columns are %q", cols)
	}
	eventually(t, 2*time.Minute, "the old webhook pods are gone", func() error {
		now := kubectl(t, "-n", "rollout-guard", "get", "pods", "-l", "app.kubernetes.io/component=webhook", "-o", "name")
		for _, p := range strings.Fields(podsBefore) {
			if strings.Contains(now, p) {
				return errorf("still running: %s", p)
			}
		}
		return nil
	})
	caAfter := kubectl(t, "get", "mutatingwebhookconfigurations", "-l", "app.kubernetes.io/instance="+releaseName,
		"-o", "jsonpath={.items[0].webhooks[0].clientConfig.caBundle}")
	if caAfter != caBefore {
		t.Error("the upgrade changed the webhooks' CA: the self-managed Secret was not kept")
	}
	ns := namespace(t, "after-upgrade")
	mutated := kubectl(t, "-n", ns, "create", "deployment", "after-upgrade", "--image=nginx:1.7.9", "--port=80",
		"--dry-run=server", "-o", "yaml")
	if !strings.Contains(mutated, "readinessProbe:") {
		t.Errorf("after the upgrade the mutating webhook no longer answers:\n%s", mutated)
	}

	if _, err := c.Helm(ctx, home, "uninstall", releaseName, "--namespace", "rollout-guard", "--wait", "--timeout", "2m"); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations", "clusterroles", "clusterrolebindings"} {
		if left := kubectl(t, "get", kind, "-l", "app.kubernetes.io/instance="+releaseName, "-o", "name"); left != "" {
			t.Errorf("helm uninstall left %s", left)
		}
	}
	if left := kubectl(t, "-n", "rollout-guard", "get", "secrets,configmaps,serviceaccounts,roles,rolebindings",
		"-o", "name"); strings.Contains(left, "rollout-guard") {
		t.Errorf("helm uninstall left in the release namespace:\n%s", left)
	}
	if crd := kubectl(t, "get", "crd", "-o", "name"); !strings.Contains(crd, "rolloutpolicies.rollout-guard.io") {
		t.Error("helm uninstall deleted the RolloutPolicy CRD, and with it every RolloutPolicy (crds.keep is on by default)")
	}
}

// nextChartWithCRDColumn pulls the published chart and adds a printer column to its CRD, as a next chart version
// that extends the CRD would; it returns the unpacked chart's directory.
func nextChartWithCRDColumn(t *testing.T, column string) string {
	t.Helper()
	dir := t.TempDir()
	if _, err := suite.cluster.Helm(context.Background(), filepath.Join(suite.cluster.Dir, "helm"), "pull",
		suite.release.Chart, "--version", suite.release.Version, "--plain-http", "--untar", "--untardir", dir); err != nil {
		t.Fatal(err)
	}
	chart := filepath.Join(dir, "rollout-guard")
	file := filepath.Join(chart, "files", "crds", "rollout-guard.io_rolloutpolicies.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the published chart has no CRD template source: %v", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(data, &crd); err != nil {
		t.Fatal(err)
	}
	for i := range crd.Spec.Versions {
		crd.Spec.Versions[i].AdditionalPrinterColumns = append(crd.Spec.Versions[i].AdditionalPrinterColumns,
			apiextensionsv1.CustomResourceColumnDefinition{Name: column, Type: "string", JSONPath: ".metadata.name", Priority: 1})
	}
	if data, err = yaml.Marshal(&crd); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return chart
}

// cert-manager mode on real pods. cert-manager's controller and cainjector are not published as Go modules (the proxy
// has only github.com/cert-manager/cert-manager, whose cmd/ modules it cannot serve), so the test does their part from
// the chart's own objects: it issues the serving Certificate the chart asks for into the Secret it names, and fills
// the caBundle of the configurations the chart marks for injection. What is tested is the chart's side: its CRDs
// check, its Certificate's names, the Secret mounted where the pods read it, and the webhooks answering through their
// Service with it. Runs after the suite's release is gone, so that only this release's webhooks answer.
func TestCertManagerModeOnRealPods(t *testing.T) {
	ctx := context.Background()
	c := suite.cluster
	home := filepath.Join(c.Dir, "helm")
	if err := c.InstallCertManagerCRDs(ctx); err != nil {
		t.Fatalf("cert-manager CRDs: %v", err)
	}
	const release, ns = "rgcm", "rollout-guard-cm"
	// crds.install=false: the RolloutPolicy CRD the suite's release kept still belongs to it
	if _, err := c.Helm(ctx, home, "install", release, suite.release.Chart, "--version", suite.release.Version,
		"--plain-http", "--namespace", ns, "--create-namespace", "--set", "crds.install=false"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = c.Helm(ctx, home, "uninstall", release, "--namespace", ns, "--wait") })

	// cert-manager's part: the serving Certificate, signed by a CA, into its secretName with ca.crt.
	type certificate struct {
		Spec struct {
			SecretName string   `json:"secretName"`
			DNSNames   []string `json:"dnsNames"`
			IsCA       bool     `json:"isCA"`
		} `json:"spec"`
	}
	var serving certificate
	found := false
	for _, name := range strings.Fields(kubectl(t, "-n", ns, "get", "certificates.cert-manager.io", "-o", "name")) {
		var c certificate
		if err := json.Unmarshal([]byte(kubectl(t, "-n", ns, "get", name, "-o", "json")), &c); err != nil {
			t.Fatal(err)
		}
		if !c.Spec.IsCA {
			serving, found = c, true
			break
		}
	}
	if !found || len(serving.Spec.DNSNames) == 0 {
		t.Fatalf("the chart renders no serving Certificate with DNS names: %+v", serving)
	}
	bundle, err := certs.NewBundle(serving.Spec.DNSNames, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	files := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": bundle.Serving.CertPEM, "tls.key": bundle.Serving.KeyPEM, "ca.crt": bundle.CA.CertPEM} {
		if err := os.WriteFile(filepath.Join(files, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	kubectl(t, "-n", ns, "create", "secret", "tls", serving.Spec.SecretName, "--cert", filepath.Join(files, "tls.crt"),
		"--key", filepath.Join(files, "tls.key"))
	kubectl(t, "-n", ns, "patch", "secret", serving.Spec.SecretName, "--type=merge", "-p",
		fmt.Sprintf(`{"data":{"ca.crt":%q}}`, base64.StdEncoding.EncodeToString(bundle.CA.CertPEM)))

	// cainjector's part: every configuration that asks for this Secret's CA gets it.
	caBundle := base64.StdEncoding.EncodeToString(bundle.CA.CertPEM)
	for _, kind := range []string{"mutatingwebhookconfigurations", "validatingwebhookconfigurations"} {
		name := kubectl(t, "get", kind, "-l", "app.kubernetes.io/instance="+release, "-o", "jsonpath={.items[0].metadata.name}")
		if from := jsonpath(t, "", kind+"/"+name, `{.metadata.annotations.cert-manager\.io/inject-ca-from}`); from != ns+"/"+serving.Spec.SecretName {
			t.Fatalf("%s %s asks for the CA of %q, but the serving Certificate writes %s/%s", kind, name, from, ns, serving.Spec.SecretName)
		}
		n := len(strings.Fields(jsonpath(t, "", kind+"/"+name, "{.webhooks[*].name}")))
		var ops []string
		for i := range n {
			ops = append(ops, fmt.Sprintf(`{"op":"add","path":"/webhooks/%d/clientConfig/caBundle","value":%q}`, i, caBundle))
		}
		kubectl(t, "patch", kind, name, "--type=json", "-p", "["+strings.Join(ops, ",")+"]")
	}

	kubectl(t, "-n", ns, "rollout", "status", "deployment/"+release+"-rollout-guard-webhook", "--timeout=3m")
	app := namespace(t, "after-cm")
	eventually(t, time.Minute, "the cert-manager-mode webhooks answer through their Service", func() error {
		out, err := suite.cluster.Kubectl(ctx, "-n", app, "create", "deployment", "cm", "--image=nginx:1.7.9",
			"--port=80", "--dry-run=server", "-o", "yaml")
		if err != nil || !strings.Contains(out, "readinessProbe:") {
			return errorf("not mutated (%v):\n%s", err, out)
		}
		return nil
	})
	denied, err := applyErr(t, app, `apiVersion: apps/v1
kind: Deployment
metadata: {name: unsafe}
spec:
  replicas: 4
  revisionHistoryLimit: 0
  selector: {matchLabels: {app: unsafe}}
  template:
    metadata: {labels: {app: unsafe}}
    spec:
      containers: [{name: web, image: "nginx:1.7.9", ports: [{containerPort: 80}]}]
`)
	if err == nil || !strings.Contains(denied, "revisionHistoryLimit") {
		t.Errorf("the validating webhook in cert-manager mode did not deny revisionHistoryLimit: 0 (%v):\n%s", err, denied)
	}
}
