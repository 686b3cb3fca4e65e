package check

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies"
)

// SuiteFile is the name suites are found by under a directory.
const SuiteFile = "suite.yaml"

// Suite tests RolloutPolicy manifests as the cluster would run them: each case is a workload manifest and the verdict
// expected of each policy named, after the API server's defaults and rollout-guard's mutation, as kubectl apply sends
// it. Paths are relative to the suite file.
type Suite struct {
	// Policies are RolloutPolicy manifest files; the built-in policies run too, and a case may expect their verdicts.
	Policies []string `json:"policies"`
	// Exceptions are RolloutPolicyException manifest files in force.
	Exceptions []string    `json:"exceptions,omitempty"`
	Cases      []SuiteCase `json:"cases"`
}

// SuiteCase is one workload and the verdicts expected of it.
type SuiteCase struct {
	Name string `json:"name"`
	// Object is the manifest, inline; File names one instead.
	Object string `json:"object,omitempty"`
	File   string `json:"file,omitempty"`
	// Expect maps a policy name to deny, warn or pass.
	Expect map[string]string `json:"expect"`
}

// CaseResult is one case's outcome: each policy's verdict against the one expected.
type CaseResult struct {
	Suite, Case string
	Passed      bool
	// Failures say, per policy that did not give the verdict expected, what it gave and why.
	Failures []string
}

// FindSuites returns path if it is a file, or every suite.yaml under it.
func FindSuites(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	var out []string
	err = filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() && e.Name() == SuiteFile {
			out = append(out, p)
		}
		return err
	})
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("%s: no %s below it", path, SuiteFile)
	}
	return out, err
}

// RunSuite runs one suite file with opts, the cluster's configuration.
func RunSuite(ctx context.Context, opts config.Options, path string) ([]CaseResult, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Suite
	if err := yaml.UnmarshalStrict(raw, &s); err != nil {
		return nil, fmt.Errorf("suite %s: %w", path, err)
	}
	if len(s.Cases) == 0 {
		return nil, fmt.Errorf("suite %s: no cases", path)
	}
	dir := filepath.Dir(path)
	// print() output of the case being run, by policy: shown with a failure, as the Rego test runner shows it.
	var printed map[string][]string
	setup := Setup{Client: ClientApply, Print: func(policy, msg string) { printed[policy] = append(printed[policy], msg) }}
	for _, p := range s.Policies {
		rps, err := ReadPolicies(filepath.Join(dir, p))
		if err != nil {
			return nil, fmt.Errorf("suite %s: %w", path, err)
		}
		setup.Policies = append(setup.Policies, rps...)
	}
	for _, p := range s.Exceptions {
		es, err := ReadExceptions(filepath.Join(dir, p))
		if err != nil {
			return nil, fmt.Errorf("suite %s: %w", path, err)
		}
		setup.Exceptions = append(setup.Exceptions, es...)
	}
	checker, err := New(ctx, opts, setup)
	if err != nil {
		return nil, fmt.Errorf("suite %s: %w", path, err)
	}
	var results []CaseResult
	for i, c := range s.Cases {
		r := CaseResult{Suite: path, Case: c.Name}
		if r.Case == "" {
			r.Case = fmt.Sprintf("case %d", i+1)
		}
		printed = map[string][]string{}
		r.Failures = runCase(ctx, checker, dir, c, printed)
		r.Passed = len(r.Failures) == 0
		results = append(results, r)
	}
	return results, nil
}

func runCase(ctx context.Context, checker *Checker, dir string, c SuiteCase, printed map[string][]string) []string {
	manifest, name := c.Object, "object"
	if c.File != "" {
		raw, err := os.ReadFile(filepath.Join(dir, c.File))
		if err != nil {
			return []string{err.Error()}
		}
		manifest, name = string(raw), c.File
	}
	if (c.Object == "") == (c.File == "") {
		return []string{"set exactly one of object and file"}
	}
	if len(c.Expect) == 0 {
		return []string{"expect names no policy: a case that expects nothing tests nothing"}
	}
	f, err := checker.Check(ctx, Document{File: name, Index: 1, Line: 1, Data: []byte(manifest)})
	switch {
	case err != nil:
		return []string{err.Error()}
	case f == nil:
		return []string{"the object is not an apps/v1 Deployment, StatefulSet or DaemonSet"}
	}
	policyNames := make([]string, 0, len(c.Expect))
	for p := range c.Expect {
		policyNames = append(policyNames, p)
	}
	sort.Strings(policyNames)
	var failures []string
	for _, p := range policyNames {
		want := c.Expect[p]
		if !slices.Contains([]string{"deny", "warn", "pass"}, want) {
			failures = append(failures, fmt.Sprintf("%s: expect %q: want deny, warn or pass", p, want))
			continue
		}
		got, why := verdictOf(f, p)
		if got != want {
			for _, line := range printed[p] {
				why += "\n      print: " + line
			}
			failures = append(failures, fmt.Sprintf("%s: expected %s, got %s%s", p, want, got, why))
		}
	}
	return failures
}

// verdictOf is a policy's verdict in a finding, and its messages.
func verdictOf(f *Finding, policy string) (verdict, why string) {
	verdict = "pass"
	var msgs []string
	for _, v := range f.Violations {
		if v.Policy != policy {
			continue
		}
		msgs = append(msgs, policies.Describe(v))
		switch {
		case v.Enforcement == policies.Deny:
			verdict = "deny"
		case v.Enforcement == policies.Warn && verdict == "pass":
			verdict = "warn"
		}
	}
	if len(msgs) > 0 {
		why = ":\n      " + strings.Join(msgs, "\n      ")
	}
	return verdict, why
}
