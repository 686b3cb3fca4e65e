package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The seeds' 50%/50% Deployment and a revisionHistoryLimit of 0 are denied, naming the field.
func TestPolicyDeniesSeedsWithFieldMessages(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	r := kubectl(t, seed(t, "surge-app.yaml"), "-n", ns, "apply", "-f", "-")
	if r.err == nil {
		t.Fatal("the 50%/50% Deployment was admitted")
	}
	for _, want := range []string{"denied the request", "[surge-unavailable] spec.strategy.rollingUpdate.maxUnavailable = 50%", "Fix:", "RolloutPolicyException"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("denial does not contain %q:\n%s", want, r.stderr)
		}
	}
	noHistory := strings.Replace(seed(t, "nginx-deployment.yaml"), "  replicas: 3\n", "  replicas: 3\n  revisionHistoryLimit: 0\n", 1)
	r = kubectl(t, noHistory, "-n", ns, "apply", "-f", "-")
	if r.err == nil || !strings.Contains(r.stderr, "[revision-history] spec.revisionHistoryLimit = 0") {
		t.Errorf("revisionHistoryLimit 0: err %v\n%s", r.err, r.stderr)
	}
	list, err := clientset(t).AppsV1().Deployments(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Errorf("%d Deployments were created despite the denials", len(list.Items))
	}
}

// nginx:latest is admitted, with a warning that a moving tag cannot be rolled back.
func TestPolicyWarnsOnLatestTag(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	latest := strings.Replace(seed(t, "nginx-deployment.yaml"), "nginx:1.7.9", "nginx:latest", 1)
	r := mustKubectl(t, latest, "-n", ns, "apply", "-f", "-")
	if !strings.Contains(r.stderr, "Warning: rollout-guard: [image-pinned] spec.template.spec.containers[0].image = nginx:latest") {
		t.Errorf("no image-pinned warning:\n%s", r.stderr)
	}
	waitAvailable(t, ns, "nginx-deployment", 60*time.Second)
}

// Ordinary apps that declare no port (a queue worker, a load generator, an inference server on a socket) cannot be
// given a probe: they install as written, with a warning naming the probe to add, and run.
func TestPortlessAppsInstallWithWarnings(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	apps := map[string]string{
		"queue-worker":     "ghcr.io/example/worker:2.3.0",
		"load-generator":   "grafana/k6:0.52.0",
		"inference-server": "ghcr.io/example/llm-server:1.4.1",
	}
	for name, image := range apps {
		manifest := strings.NewReplacer("nginx-deployment", name, "app: nginx", "app: "+name, "nginx:1.7.9", image, "        ports:\n        - containerPort: 80\n", "").
			Replace(seed(t, "nginx-deployment.yaml"))
		if strings.Contains(manifest, "containerPort") {
			t.Fatalf("the manifest still declares a port:\n%s", manifest)
		}
		r := mustKubectl(t, manifest, "-n", ns, "apply", "-f", "-")
		for _, want := range []string{
			"Warning: rollout-guard: [probes-required] spec.template.spec.containers[0].readinessProbe",
			"declares no port", "exec readinessProbe",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s: the warnings do not contain %q:\n%s", name, want, r.stderr)
			}
		}
		waitAvailable(t, ns, name, 60*time.Second)
	}
}

const teamLabelPolicy = `apiVersion: rollout-guard.io/v1alpha1
kind: RolloutPolicy
metadata:
  name: NAME
spec:
  enforcement: deny
  match:
    kinds: [Deployment]
    namespaceSelector: {matchLabels: {policy-test: NAME}}
  rego: |
    package rollout_guard.NAMEPKG

    deny contains v if {
      not input.object.metadata.labels.team
      v := {"field": "metadata.labels.team", "msg": "every Deployment needs a team label", "fix": "add metadata.labels.team"}
    }
`

func rolloutPolicy(name, rego string) string {
	m := strings.ReplaceAll(teamLabelPolicy, "NAMEPKG", strings.ReplaceAll(name, "-", "_"))
	m = strings.ReplaceAll(m, "NAME", name)
	if rego != "" {
		i := strings.Index(m, "  rego: |\n")
		m = m[:i] + "  rego: |\n" + rego
	}
	return m
}

// RolloutPolicies that do not compile, or call http.send or a JSON Schema built-in, are rejected at
// kubectl apply with the compiler's message; a valid one is enforced within 5 s.
func TestPolicyRolloutPolicies(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	name := "team-label-" + ns[len(ns)-6:]
	t.Cleanup(func() { kubectl(t, "", "delete", "rolloutpolicy", name, "--ignore-not-found") })

	syntax := "    package rollout_guard." + strings.ReplaceAll(name, "-", "_") + "\n\n    deny contains msg if {\n      msg := \n    }\n"
	r := kubectl(t, rolloutPolicy(name, syntax), "apply", "-f", "-")
	if r.err == nil || !strings.Contains(r.stderr, "does not compile") || !strings.Contains(r.stderr, name+".rego:5") {
		t.Errorf("syntax error: err %v\n%s", r.err, r.stderr)
	}
	network := "    package rollout_guard." + strings.ReplaceAll(name, "-", "_") + "\n\n    deny contains msg if {\n      resp := http.send({\"method\": \"get\", \"url\": \"https://example.com\"})\n      msg := resp.body\n    }\n"
	r = kubectl(t, rolloutPolicy(name, network), "apply", "-f", "-")
	if r.err == nil || !strings.Contains(r.stderr, "http.send") {
		t.Errorf("http.send: err %v\n%s", r.err, r.stderr)
	}
	// The sandbox escape the hostile test found: a JSON Schema $ref to a local listener and to a local file.
	var hits atomic.Int32
	listener := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte(`{"type": "string"}`))
	}))
	defer listener.Close()
	for _, ref := range []string{listener.URL + "/schema.json", "file:///etc/hostname"} {
		escape := "    package rollout_guard." + strings.ReplaceAll(name, "-", "_") + "\n\n    deny contains msg if {\n" +
			"      r := json.match_schema(input.object, {\"$ref\": \"" + ref + "\"})\n      msg := sprintf(\"%v\", [r])\n    }\n"
		r = kubectl(t, rolloutPolicy(name, escape), "apply", "-f", "-")
		if r.err == nil || !strings.Contains(r.stderr, "json.match_schema") {
			t.Errorf("json.match_schema with $ref %s: err %v\n%s", ref, r.err, r.stderr)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("a RolloutPolicy made the webhook call a local listener %d times", n)
	}

	mustKubectl(t, "", "label", "namespace", ns, "policy-test="+name)
	applied := time.Now()
	mustKubectl(t, rolloutPolicy(name, ""), "apply", "-f", "-")
	var took time.Duration
	eventually(t, 5*time.Second, "RolloutPolicy enforced", func(context.Context) (bool, error) {
		r := kubectl(t, seed(t, "nginx-deployment.yaml"), "-n", ns, "apply", "--dry-run=server", "-f", "-")
		took = time.Since(applied)
		return r.err != nil && strings.Contains(r.stderr, "["+name+"] metadata.labels.team: every Deployment needs a team label"), nil
	})
	t.Logf("RolloutPolicy enforced %s after kubectl apply", took.Round(time.Millisecond))
	status := mustKubectl(t, "", "get", "rolloutpolicy", name, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
	if status.stdout != "True" {
		t.Errorf("Ready condition = %q, want True", status.stdout)
	}
	labelled := strings.Replace(seed(t, "nginx-deployment.yaml"), "    app: nginx\nspec:", "    app: nginx\n    team: payments\nspec:", 1)
	mustKubectl(t, labelled, "-n", ns, "apply", "-f", "-")
}

// A Deployment that already breaks a policy (admitted while policies were off in its namespace, as while the
// webhook is down) can still be scaled and relabelled; changing the offending field to another bad value is
// denied, and so is the next rollout: a change to the pod template is judged in full.
func TestPolicyRatchetsLegacyViolations(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	mustKubectl(t, "", "label", "namespace", ns, "rollout-guard.io/policies=disabled")
	mustKubectl(t, seed(t, "surge-app.yaml"), "-n", ns, "apply", "-f", "-")
	mustKubectl(t, "", "label", "namespace", ns, "rollout-guard.io/policies-")
	eventually(t, 10*time.Second, "policies back on in the namespace", func(context.Context) (bool, error) {
		r := kubectl(t, "", "-n", ns, "patch", "deployment", "surge-app", "--dry-run=server", "-p", `{"spec":{"strategy":{"rollingUpdate":{"maxUnavailable":"60%"}}}}`)
		return r.err != nil, nil
	})
	mustKubectl(t, "", "-n", ns, "scale", "deployment/surge-app", "--replicas=12")
	r := mustKubectl(t, "", "-n", ns, "patch", "deployment", "surge-app", "-p", `{"spec":{"replicas":8}}`)
	if !strings.Contains(r.stderr, "already broken before this update") {
		t.Errorf("patching replicas of a legacy violator gave no ratchet warning:\n%s", r.stderr)
	}
	mustKubectl(t, "", "-n", ns, "label", "deployment", "surge-app", "tier=web")
	r = kubectl(t, "", "-n", ns, "patch", "deployment", "surge-app", "-p", `{"spec":{"strategy":{"rollingUpdate":{"maxUnavailable":"60%"}}}}`)
	if r.err == nil || !strings.Contains(r.stderr, "[surge-unavailable]") {
		t.Errorf("changing the violating field to a worse value was admitted: %v\n%s", r.err, r.stderr)
	}
	r = kubectl(t, "", "-n", ns, "set", "image", "deployment/surge-app", "app=nginx:1.17.0")
	if r.err == nil || !strings.Contains(r.stderr, "[surge-unavailable]") {
		t.Errorf("a new rollout of a legacy violator was admitted as already broken: %v\n%s", r.err, r.stderr)
	}
}

// A RolloutPolicy declares its parameters (an OpenAPI v3 schema): a misspelt one is refused at kubectl apply, naming
// the declared ones, instead of silently turning the rule off; parameters without a schema get a warning.
func TestPolicyParameterSchema(t *testing.T) {
	t.Parallel()
	ns := namespace(t)
	name := "required-label-" + ns[len(ns)-6:]
	t.Cleanup(func() { kubectl(t, "", "delete", "rolloutpolicy", name, "--ignore-not-found") })
	mustKubectl(t, "", "label", "namespace", ns, "policy-test="+name)
	policy := func(parameters, schema string) string {
		return fmt.Sprintf(`apiVersion: rollout-guard.io/v1alpha1
kind: RolloutPolicy
metadata:
  name: %[1]s
spec:
  match:
    namespaceSelector: {matchLabels: {policy-test: %[1]s}}
  %[3]s
  parameters: %[2]s
  rego: |
    package rollout_guard.%[4]s

    deny contains v if {
      not input.object.metadata.labels[input.parameters.label]
      v := {"field": "metadata.labels", "msg": sprintf("every Deployment needs a %%s label", [input.parameters.label])}
    }
`, name, parameters, schema, strings.ReplaceAll(name, "-", "_"))
	}
	const schema = `parameterSchema: {type: object, required: [label], properties: {label: {type: string, minLength: 1}}}`
	r := kubectl(t, policy(`{lable: team}`, schema), "apply", "-f", "-")
	for _, want := range []string{`spec.parameters.lable: Unsupported value: "lable": supported values: "label"`, "label in body is required"} {
		if r.err == nil || !strings.Contains(r.stderr, want) {
			t.Errorf("a misspelt parameter: err %v, %q not in:\n%s", r.err, want, r.stderr)
		}
	}
	r = kubectl(t, policy(`{label: team}`, ""), "apply", "-f", "-")
	if r.err != nil || !strings.Contains(r.stderr, "has spec.parameters but no spec.parameterSchema") {
		t.Errorf("parameters without a schema: err %v, no warning:\n%s", r.err, r.stderr)
	}
	mustKubectl(t, policy(`{label: team}`, schema), "apply", "-f", "-")
	eventually(t, 10*time.Second, "the declared parameter is enforced", func(context.Context) (bool, error) {
		r := kubectl(t, seed(t, "nginx-deployment.yaml"), "-n", ns, "create", "--dry-run=server", "-o", "name", "-f", "-")
		return r.err != nil && strings.Contains(r.stderr, "every Deployment needs a team label"), nil
	})
}
