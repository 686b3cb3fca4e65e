package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestCheck(t *testing.T) {
	seeds := filepath.Join("..", "..", "test", "seeds")
	policy := filepath.Join(t.TempDir(), "team.yaml")
	if err := os.WriteFile(policy, []byte(`apiVersion: rollout-guard.io/v1alpha1
kind: RolloutPolicy
metadata: {name: team-label}
spec:
  rego: |
    package rollout_guard.team_label

    deny contains "metadata.labels.team is required" if { not input.object.metadata.labels.team }
`), 0o600); err != nil {
		t.Fatal(err)
	}
	writeException := func(name, workload string) string {
		path := filepath.Join(t.TempDir(), name+".yaml")
		manifest := fmt.Sprintf(`apiVersion: rollout-guard.io/v1alpha1
kind: RolloutPolicyException
metadata: {name: %s, namespace: team}
spec:
  policies: [surge-unavailable]
  workloads: {names: [%s]}
  reason: the batch job takes half its pods down on purpose
  expires: %s
`, name, workload, time.Now().Add(24*time.Hour).UTC().Format(time.RFC3339))
		if err := os.WriteFile(path, []byte(manifest), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	exception, otherException := writeException("surge", "surge-app"), writeException("other", "another-app")
	// maxUnavailable written as the API's default: only kubectl apply's record tells the cluster so.
	explicit25 := strings.Replace(mustRead(t, filepath.Join(seeds, "nginx-deployment.yaml")), "  replicas: 3\n",
		"  replicas: 3\n  strategy:\n    rollingUpdate: {maxUnavailable: 25%}\n", 1)
	// What kubectl get -o yaml prints: a List of the cluster's objects.
	list := "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n- " +
		strings.ReplaceAll(strings.TrimPrefix(stripComment(mustRead(t, filepath.Join(seeds, "surge-app.yaml"))), "\n"), "\n", "\n  ")
	nested := t.TempDir()
	for path, content := range map[string]string{
		"apps/web/deploy.yaml":    mustRead(t, filepath.Join(seeds, "nginx-deployment.yaml")),
		"apps/batch/surge.yml":    mustRead(t, filepath.Join(seeds, "surge-app.yaml")),
		".git/objects/junk.yaml":  "not: [yaml",
		"apps/web/configmap.json": `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}`,
	} {
		if err := os.MkdirAll(filepath.Join(nested, filepath.Dir(path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(nested, path), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	oldAPI := "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: legacy}\nspec:\n  template:\n    metadata: {labels: {app: legacy}}\n    spec: {containers: [{name: a, image: nginx:1.7.9}]}\n"
	latest := strings.ReplaceAll(mustRead(t, filepath.Join(seeds, "nginx-deployment.yaml")), "nginx:1.7.9", "nginx:latest")
	suiteDir := t.TempDir()
	failingSuite, emptySuite, printSuite := filepath.Join(suiteDir, "failing.yaml"), filepath.Join(suiteDir, "empty.yaml"), filepath.Join(suiteDir, "print.yaml")
	indented := "    " + strings.ReplaceAll(strings.TrimSpace(latest), "\n", "\n    ")
	for path, content := range map[string]string{
		failingSuite: "cases:\n- name: a latest tag warns\n  expect: {image-pinned: warn}\n  object: |\n" + indented + "\n- name: a latest tag is fine\n  expect: {image-pinned: pass}\n  object: |\n" + indented + "\n",
		emptySuite:   "cases:\n- name: nothing\n  expect: {}\n  object: |\n" + indented + "\n",
		printSuite:   "policies: [print-policy.yaml]\ncases:\n- name: prints\n  expect: {print-demo: deny}\n  object: |\n" + indented + "\n",
		filepath.Join(suiteDir, "print-policy.yaml"): "apiVersion: rollout-guard.io/v1alpha1\nkind: RolloutPolicy\nmetadata: {name: print-demo}\nspec:\n  rego: |\n" +
			"    package rollout_guard.print_demo\n\n    deny contains \"an app label other than nginx\" if {\n      print(\"app label is\", input.object.metadata.labels.app)\n" +
			"      input.object.metadata.labels.app != \"nginx\"\n    }\n",
	} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		stdin     string
		args      []string
		code      int
		stdout    []string
		stderr    string
		jsonCheck func(t *testing.T, out string)
	}{
		{name: "directory of seeds: the 50/50 app is denied", args: []string{"check", "-f", seeds}, code: 1,
			stdout: []string{"surge-app.yaml (document 1) Deployment/surge-app: DENIED", "nginx-deployment.yaml (document 1) Deployment/nginx-deployment: admitted", "4 workloads checked, 1 denied"}},
		{name: "clean file", args: []string{"check", "-f", filepath.Join(seeds, "nginx-deployment.yaml")}, code: 0,
			stdout: []string{"mutation: set readinessProbe tcpSocket :80 on container nginx"}},
		{name: "multi-document stdin names the document", args: []string{"check", "-f", "-"}, code: 1,
			stdin:  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n" + mustRead(t, filepath.Join(seeds, "surge-app.yaml")),
			stdout: []string{"- (document 2) Deployment/surge-app: DENIED"}},
		{name: "latest is a warning, not a denial", args: []string{"check", "-f", "-"}, code: 0,
			stdin:  strings.Replace(mustRead(t, filepath.Join(seeds, "nginx-deployment.yaml")), "nginx:1.7.9", "nginx:latest", 1),
			stdout: []string{"warn: [image-pinned]"}},
		{name: "custom policy with --policy", args: []string{"check", "-f", filepath.Join(seeds, "nginx-deployment.yaml"), "--policy", policy}, code: 1,
			stdout: []string{"deny: [team-label] metadata.labels.team is required"}},
		{name: "json output", args: []string{"check", "-o", "json", "-f", filepath.Join(seeds, "surge-app.yaml")}, code: 1,
			jsonCheck: func(t *testing.T, out string) {
				var got struct {
					Denied   int `json:"denied"`
					Findings []struct {
						File       string `json:"file"`
						Document   int    `json:"document"`
						Violations []struct {
							Policy string `json:"policy"`
							Field  string `json:"field"`
						} `json:"violations"`
					} `json:"findings"`
				}
				if err := json.Unmarshal([]byte(out), &got); err != nil {
					t.Fatalf("output is not JSON: %v\n%s", err, out)
				}
				if got.Denied != 1 || got.Findings[0].Document != 1 || got.Findings[0].Violations[0].Field != "spec.strategy.rollingUpdate.maxUnavailable" {
					t.Errorf("json = %+v", got)
				}
			}},
		{name: "a value equal to the API default: kept for apply, and the difference for other clients named", args: []string{"check", "-f", "-"}, code: 0,
			stdin: explicit25, stdout: []string{"spec.strategy.rollingUpdate.maxUnavailable is kept as written for kubectl apply",
				"a client that records no intent (kubectl create or replace, Helm 3, client-go) gets set spec.strategy.rollingUpdate.maxUnavailable to 0"}},
		{name: "--client create models a client that records no intent", args: []string{"check", "--client", "create", "-f", "-"}, code: 0,
			stdin: explicit25, stdout: []string{"mutation: set spec.strategy.rollingUpdate.maxUnavailable to 0"}},
		{name: "an unknown client is a usage error", args: []string{"check", "--client", "helm", "-f", "-"}, code: 2, stdin: explicit25, stderr: "--client apply|create"},
		{name: "a RolloutPolicyException read with --exception waives, with a warning", args: []string{"check", "-f", filepath.Join(seeds, "surge-app.yaml"), "--exception", exception}, code: 0,
			stdout: []string{"Deployment/surge-app: admitted", "RolloutPolicyException team/surge waives surge-unavailable"}},
		{name: "an exception for another workload waives nothing", args: []string{"check", "-f", filepath.Join(seeds, "nginx-deployment.yaml"), "-f", filepath.Join(seeds, "surge-app.yaml"), "--exception", otherException}, code: 1,
			stdout: []string{"Deployment/surge-app: DENIED"}},
		{name: "a List is read item by item", args: []string{"check", "-f", "-"}, code: 1, stdin: list,
			stdout: []string{"- (document 1, item 2) Deployment/surge-app: DENIED", "1 workloads checked, 1 denied"}},
		{name: "nested directories, hidden ones skipped", args: []string{"check", "-f", nested}, code: 1,
			stdout: []string{"apps/batch/surge.yml (document 1) Deployment/surge-app: DENIED", "apps/web/deploy.yaml (document 1) Deployment/nginx-deployment: admitted", "2 workloads checked, 1 denied"}},
		{name: "a removed API version is an error naming the fix", args: []string{"check", "-f", "-"}, code: 2, stdin: oldAPI,
			stderr: "-:1 (document 1): Deployment uses apiVersion extensions/v1beta1, which Kubernetes removed in 1.16: use apiVersion: apps/v1, which also requires spec.selector"},
		{name: "an input without workloads is an error", args: []string{"check", "-f", "-"}, code: 2, stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
			stderr: "no apps/v1 Deployment, StatefulSet or DaemonSet in -; pass --allow-empty"},
		{name: "unless --allow-empty", args: []string{"check", "--allow-empty", "-f", "-"}, code: 0, stdin: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
			stdout: []string{"0 workloads checked"}},
		{name: "a YAML error names the file's line, and every error is reported", args: []string{"check", "-f", "-"}, code: 2,
			stdin:  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n# comment\napiVersion: apps/v1\nkind: Deployment\nspec: [unclosed\n---\n" + oldAPI,
			stderr: "-:5 (document 2): error converting YAML to JSON: yaml: line 8: did not find expected ',' or ']'\nrollout-guard check: -:10 (document 3): Deployment uses apiVersion extensions/v1beta1"},
		{name: "--fail-on-warn fails on a policy warning", args: []string{"check", "--fail-on-warn", "-f", "-"}, code: 1, stdin: latest,
			stdout: []string{"warn: [image-pinned]", "1 warned"}},
		{name: "github annotations on the workload's line", args: []string{"check", "-o", "github", "-f", "-"}, code: 1,
			stdin:  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n" + mustRead(t, filepath.Join(seeds, "surge-app.yaml")),
			stdout: []string{"::error file=-,line=5,title=rollout-guard surge-unavailable Deployment/surge-app::"}},
		{name: "a Helm chart is rendered with the values files and release name given", code: 1,
			args:   []string{"check", "-f", "../../policies/check/testdata/render/chart", "--values", "../../policies/check/testdata/render/prod-values.yaml", "--release-name", "shop"},
			stdout: []string{"chart/templates/deployment.yaml (document 1) Deployment/shop-web: DENIED", "maxUnavailable = 100%"}},
		{name: "a kustomization is built", args: []string{"check", "-f", "../../policies/check/testdata/render/kustomize"}, code: 1,
			stdout: []string{"kustomize/kustomization (document 1) Deployment/prod-api: DENIED", "takes 5 of 10 replicas down"}},
		{name: "JUnit XML: the denied workload is a failed test case, exit code unchanged", args: []string{"check", "-o", "junit", "-f", "-"}, code: 1,
			stdin:  mustRead(t, filepath.Join(seeds, "surge-app.yaml")),
			stdout: []string{`<testsuites name="rollout-guard check" tests="1" failures="1" errors="0">`, `<failure message="deny: [surge-unavailable]`}},
		{name: "SARIF: the denial is an error result on the workload's line, input errors are notifications", args: []string{"check", "-o", "sarif", "-f", "-", "-f", "/nonexistent.yaml"}, code: 2,
			stdin:  mustRead(t, filepath.Join(seeds, "surge-app.yaml")),
			stdout: []string{`"version": "2.1.0"`, `"ruleId": "surge-unavailable"`, `"level": "error"`, `"startLine": 1`, `"executionSuccessful": false`, "no such file"}},
		{name: "a failing suite case shows the expected and the actual verdict, with the policy's message", args: []string{"test", "--suite", failingSuite}, code: 1,
			stdout: []string{"FAIL " + failingSuite + ": a latest tag is fine", "image-pinned: expected pass, got warn:", "[image-pinned] spec.template.spec.containers[0].image = nginx:latest", "suites: 1 passed, 1 failed"}},
		{name: "a failing suite case shows the policy's print() output", args: []string{"test", "--suite", printSuite}, code: 1,
			stdout: []string{"print-demo: expected deny, got pass", "print: app label is nginx"}},
		{name: "a suite case that expects nothing is refused", args: []string{"test", "--suite", emptySuite}, code: 1,
			stdout: []string{"expect names no policy"}},
		{name: "unknown field is an input error", args: []string{"check", "-f", "-"}, code: 2,
			stdin: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicaz: 3}\n", stderr: `unknown field "replicaz"`},
		{name: "malformed YAML is an input error", args: []string{"check", "-f", "-"}, code: 2,
			stdin: "apiVersion: apps/v1\nkind: Deployment\nspec: [unclosed\n", stderr: "document 1"},
		{name: "missing file", args: []string{"check", "-f", "/nonexistent.yaml"}, code: 2, stderr: "no such file"},
		{name: "no input is a usage error", args: []string{"check"}, code: 2, stderr: "usage"},
		{name: "rego tests of the built-ins", args: []string{"test"}, code: 0, stdout: []string{"PASS rollout_guard.surge_unavailable_test.test_seed_fifty_fifty_at_ten_replicas_denied", "0 failed"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: "unknown command"},
		{name: "invalid options are all reported with paths", args: []string{"webhook", "--webhook-port", "0", "--dev-failure-policy", "Sometimes"}, code: 2,
			stderr: "webhook.port: Invalid value: 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, tt.stdin, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out, errOut)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errOut)
			}
			if tt.jsonCheck != nil {
				tt.jsonCheck(t, out)
			}
		})
	}
}

func TestInvalidOptionsNameEveryField(t *testing.T) {
	_, _, errOut := runCLI(t, "", "webhook", "--webhook-port", "0", "--dev-failure-policy", "Sometimes", "--metrics-addr", "nonsense")
	for _, want := range []string{"webhook.port", "dev.failurePolicy", "webhook.metricsAddr"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error does not name %s:\n%s", want, errOut)
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte("webhook:\n  prot: 9443\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "", "webhook", "--config", cfg); code != 2 || !strings.Contains(errOut, `unknown field "webhook.prot"`) {
		t.Errorf("unknown config field: exit %d\n%s", code, errOut)
	}
}

// stripComment drops a manifest's leading comment lines.
func stripComment(s string) string {
	for strings.HasPrefix(s, "#") {
		_, s, _ = strings.Cut(s, "\n")
	}
	return s
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The example RolloutPolicies pass their suites: what make test runs for the library under examples/.
func TestExampleSuites(t *testing.T) {
	code, out, errOut := runCLI(t, "", "test", "--suite", filepath.Join("..", "..", "examples"))
	if code != 0 || !strings.Contains(out, " 0 failed") {
		t.Fatalf("example suites: exit %d\n%s%s", code, out, errOut)
	}
	if n := strings.Count(out, "PASS "); n < 20 {
		t.Errorf("only %d example cases ran:\n%s", n, out)
	}
	dirs, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*", "suite.yaml"))
	if len(dirs) < 10 {
		t.Errorf("%d example policies with a suite, want at least 10", len(dirs))
	}
}

// Each component exports what it was built from, as version prints it.
func TestBuildInfo(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(buildInfo())
	got, err := testutil.GatherAndCount(reg, "rollout_guard_build_info")
	if err != nil || got != 1 {
		t.Fatalf("%d rollout_guard_build_info series (%v), want 1", got, err)
	}
	want := fmt.Sprintf(`
# HELP rollout_guard_build_info 1, labelled with the version, commit, build date and Go version rollout-guard was built with.
# TYPE rollout_guard_build_info gauge
rollout_guard_build_info{commit=%q,date=%q,goversion=%q,version=%q} 1
`, commit, date, runtime.Version(), version)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "rollout_guard_build_info"); err != nil {
		t.Error(err)
	}
}
