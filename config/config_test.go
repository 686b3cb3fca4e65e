package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rollout-guard/rollout-guard/policies"
)

func TestDefaultsAreValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("built-in defaults invalid: %v", err)
	}
}

func TestValidateReportsEveryFieldWithItsPath(t *testing.T) {
	o := Default()
	o.Namespace = ""
	o.Webhook.Port = 70000
	o.Webhook.MetricsAddr = "no-port"
	o.Watcher.PprofAddr = "localhost"
	o.Rollback.Mode = "sometimes"
	o.Rollback.CrashLoopRestarts = 0
	o.Rollback.Selector = "a in ("
	o.Mutation.Defaults.Strategy.RevisionHistoryLimit = 0
	o.Policies.EvaluationTimeoutMillis = 10000
	o.Policies.BuiltIns["known-bad-revision"] = policies.Settings{Enforcement: policies.Deny, Parameters: map[string]any{"window": "a day"}}
	o.Analysis.Prometheus.Address = "prometheus:9090"
	o.Analysis.Prometheus.Timeout.Duration = 0
	o.Analysis.Prometheus.UsernameFile = "/secret/user"
	o.Audit.Interval.Duration = time.Second
	o.Audit.MaxResultsPerReport = 100000
	err := o.Validate()
	if err == nil {
		t.Fatal("invalid options accepted")
	}
	for _, path := range []string{"namespace", "webhook.port", "webhook.metricsAddr", "watcher.pprofAddr", "rollback.mode", "rollback.crashLoopRestarts",
		"rollback.selector", "mutation.defaults.strategy.revisionHistoryLimit", "policies.evaluationTimeoutMillis", "policies.builtIns[known-bad-revision].parameters.window",
		"analysis.prometheus.address", "analysis.prometheus.timeout", "analysis.prometheus.usernameFile",
		"audit.interval", "audit.maxResultsPerReport"} {
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error does not name %s:\n%v", path, err)
		}
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	o := Default()
	good := write("good.yaml", "rollback:\n  imagePullGracePeriod: 15s\nmutation:\n  namespaces:\n    team-a:\n      probePath: /healthz\n")
	if err := o.LoadFile(good); err != nil {
		t.Fatal(err)
	}
	if o.Rollback.ImagePullGracePeriod.Duration != 15*time.Second || *o.Mutation.Namespaces["team-a"].ProbePath != "/healthz" {
		t.Errorf("file not applied: %+v", o.Rollback)
	}
	if o.Rollback.CrashLoopRestarts != 3 || o.Webhook.Port != 9443 {
		t.Error("fields the file does not mention lost their defaults")
	}
	bad := write("bad.yaml", "webhook:\n  prot: 1\nrollback:\n  mdoe: dryrun\n")
	fresh := Default()
	err := fresh.LoadFile(bad)
	if err == nil || !strings.Contains(err.Error(), `unknown field "webhook.prot"`) || !strings.Contains(err.Error(), `unknown field "rollback.mdoe"`) {
		t.Errorf("unknown fields not all reported with paths: %v", err)
	}
	if err := fresh.LoadFile(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing file was accepted")
	}
}
