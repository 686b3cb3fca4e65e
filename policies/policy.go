package policies

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

//go:embed rego/*.rego
var builtinFS embed.FS

// Enforcement says what a policy's deny rules do.
type Enforcement string

// Enforcements.
const (
	// Deny rejects the request.
	Deny Enforcement = "deny"
	// Warn admits it with an admission warning.
	Warn Enforcement = "warn"
	// DryRun admits it silently and only records the violation (metric, log).
	DryRun Enforcement = "dryrun"
)

// Settings are how one policy is applied.
type Settings struct {
	Enforcement Enforcement    `json:"enforcement"`
	Parameters  map[string]any `json:"parameters,omitempty"`
	// Exemptible policies may be waived per object with the
	// rollout-guard.io/exempt annotation and a reason.
	Exemptible bool `json:"exemptible"`
	// OnError is the verdict when the policy cannot be evaluated (an error, its deadline): deny or allow (a
	// warning). Empty: deny for built-ins, allow for RolloutPolicies.
	OnError OnError `json:"onError,omitempty"`
}

// OnError is what a policy that cannot be evaluated decides.
type OnError string

// OnError verdicts.
const (
	OnErrorAllow OnError = "allow"
	OnErrorDeny  OnError = "deny"
)

// FailsClosed reports whether a failure to evaluate the policy denies: its OnError, or by default, deny for a
// built-in (rollout-guard's own, tested policies) and allow for a RolloutPolicy (one careless rule must not stop
// every rollout in the cluster).
func (s Settings) FailsClosed(builtIn bool) bool {
	if s.OnError == "" {
		return builtIn
	}
	return s.OnError == OnErrorDeny
}

// Policy is one compiled unit: a Rego module in package rollout_guard.<id>
// with deny and/or warn rules.
type Policy struct {
	// Name is the policy's name in messages, config and annotations: the
	// package's last segment with - for _ (surge-unavailable).
	Name     string
	Module   string
	Filename string
	Settings Settings
	// Kinds limits the policy to these kinds; empty means all workloads.
	Kinds   []string
	BuiltIn bool
}

// Package is the Rego package a policy named name must declare.
func Package(name string) string {
	return "rollout_guard." + strings.ReplaceAll(name, "-", "_")
}

// BuiltInNames lists the built-in policies.
var BuiltInNames = []string{"surge-unavailable", "revision-history", "progress-deadline", "probes-required", "strategy", "image-pinned", KnownBadRevision}

// KnownBadRevision is the built-in policy on updates that put back a revision the watcher rolled back; the webhook
// gives it input.rolledBack.
const KnownBadRevision = "known-bad-revision"

// DefaultSettings are the built-in policies' settings before configuration.
func DefaultSettings() map[string]Settings {
	return map[string]Settings{
		"surge-unavailable": {Enforcement: Deny, Exemptible: true, Parameters: map[string]any{"minAvailable": 1, "maxUnavailablePercent": 25, "maxSurgePercent": 100}},
		"revision-history":  {Enforcement: Deny, Exemptible: true, Parameters: map[string]any{"min": 2, "max": 20}},
		"progress-deadline": {Enforcement: Deny, Exemptible: true, Parameters: map[string]any{"max": 900}},
		"probes-required":   {Enforcement: Deny, Exemptible: true},
		"strategy":          {Enforcement: Warn, Exemptible: true},
		"image-pinned":      {Enforcement: Warn, Exemptible: true},
		KnownBadRevision:    {Enforcement: Warn, Exemptible: false, Parameters: map[string]any{"window": "24h"}},
	}
}

// BuiltIns returns the built-in policies with settings applied over the defaults.
func BuiltIns(settings map[string]Settings) ([]Policy, error) {
	var out []Policy
	for _, name := range BuiltInNames {
		file := "rego/" + strings.ReplaceAll(name, "-", "_") + ".rego"
		src, err := builtinFS.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("built-in policy %s: %w", name, err)
		}
		s, ok := settings[name]
		if !ok {
			s = DefaultSettings()[name]
		}
		out = append(out, Policy{Name: name, Module: string(src), Filename: file, Settings: s, BuiltIn: true})
	}
	return out, nil
}

// libraryModule is the helper package every policy may import.
func libraryModule() (string, error) {
	src, err := builtinFS.ReadFile("rego/lib.rego")
	return string(src), err
}

// BuiltInFiles returns every embedded Rego file (policies, library and tests) by name, for `rollout-guard test`.
func BuiltInFiles() (map[string]string, error) {
	files := map[string]string{}
	err := fs.WalkDir(builtinFS, "rego", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := builtinFS.ReadFile(p)
		files[path.Base(p)] = string(data)
		return err
	})
	return files, err
}

// Config configures the policies: per built-in policy settings, namespaces
// left alone, and the bounds of one evaluation.
type Config struct {
	BuiltIns map[string]Settings `json:"builtIns"`
	// SkipNamespaces are never validated (on top of the webhook's own skips).
	SkipNamespaces []string `json:"skipNamespaces,omitempty"`
	// DisableLabel on a namespace, set to "disabled" by an admin, turns policies off there.
	DisableLabel string `json:"disableLabel"`
	// EvaluationTimeoutMillis bounds one evaluation, well below the webhook's timeout.
	EvaluationTimeoutMillis int `json:"evaluationTimeoutMillis"`
	// EvaluationMemoryMiB bounds what one evaluation may allocate (see WithMemoryLimit).
	EvaluationMemoryMiB int `json:"evaluationMemoryMiB"`
	// AnnotationExemptions lets a workload's own rollout-guard.io/exempt annotations waive the policies marked
	// exemptible. Off by default: whoever edits a workload could waive the policies meant for them. Turning it on
	// is weaker than RolloutPolicyExceptions, whose granting is an RBAC decision.
	AnnotationExemptions bool `json:"annotationExemptions"`
	// MaxExceptionDuration is how far ahead a RolloutPolicyException may expire.
	MaxExceptionDuration metav1.Duration `json:"maxExceptionDuration"`
}

// DefaultConfig is the built-in policy configuration.
func DefaultConfig() Config {
	return Config{BuiltIns: DefaultSettings(), DisableLabel: "rollout-guard.io/policies", EvaluationTimeoutMillis: 500,
		EvaluationMemoryMiB:  64,
		MaxExceptionDuration: metav1.Duration{Duration: 90 * 24 * time.Hour}}
}

// Validate reports every invalid field.
func (c Config) Validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for name, s := range c.BuiltIns {
		bp := p.Child("builtIns").Key(name)
		if !slices.Contains(BuiltInNames, name) {
			errs = append(errs, field.NotSupported(p.Child("builtIns"), name, BuiltInNames))
		}
		errs = append(errs, s.Validate(bp)...)
		if w, ok := s.Parameters["window"]; ok && name == KnownBadRevision {
			if d, err := time.ParseDuration(fmt.Sprint(w)); err != nil || d <= 0 {
				errs = append(errs, field.Invalid(bp.Child("parameters", "window"), w, "must be a positive duration, for example 24h"))
			}
		}
	}
	if c.EvaluationTimeoutMillis < 1 || c.EvaluationTimeoutMillis > 2500 {
		errs = append(errs, field.Invalid(p.Child("evaluationTimeoutMillis"), c.EvaluationTimeoutMillis, "must be between 1 and 2500 (below the webhook's 3 s timeout)"))
	}
	if c.EvaluationMemoryMiB < 8 || c.EvaluationMemoryMiB > 4096 {
		errs = append(errs, field.Invalid(p.Child("evaluationMemoryMiB"), c.EvaluationMemoryMiB, "must be between 8 and 4096, well below the webhook's memory limit"))
	}
	if c.MaxExceptionDuration.Duration <= 0 {
		errs = append(errs, field.Invalid(p.Child("maxExceptionDuration"), c.MaxExceptionDuration.Duration.String(), "must be positive, for example 2160h (90 days)"))
	}
	return errs
}

// Validate reports invalid settings.
func (s Settings) Validate(p *field.Path) field.ErrorList {
	if !slices.Contains([]Enforcement{Deny, Warn, DryRun}, s.Enforcement) {
		return field.ErrorList{field.NotSupported(p.Child("enforcement"), s.Enforcement, []string{string(Deny), string(Warn), string(DryRun)})}
	}
	if !slices.Contains([]OnError{"", OnErrorAllow, OnErrorDeny}, s.OnError) {
		return field.ErrorList{field.NotSupported(p.Child("onError"), s.OnError, []string{string(OnErrorAllow), string(OnErrorDeny)})}
	}
	return nil
}
