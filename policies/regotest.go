package policies

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestResult is the outcome of one Rego test rule.
type TestResult struct {
	Name   string // package.test_name
	Passed bool
	Detail string // failure or error text
}

// RunTests runs the test_ rules of Rego modules given by file name. The
// shared library is added when absent, so a platform team's tests can import
// data.rollout_guard.lib like the built-ins do.
func RunTests(ctx context.Context, files map[string]string) ([]TestResult, error) {
	modules := map[string]*ast.Module{}
	if _, ok := files["lib.rego"]; !ok {
		lib, err := libraryModule()
		if err != nil {
			return nil, err
		}
		files = mergeFiles(files, map[string]string{"lib.rego": lib})
	}
	for name, src := range files {
		m, err := ast.ParseModuleWithOpts(name, src, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
		modules[name] = m
	}
	ch, err := tester.NewRunner().CapturePrintOutput(true).SetModules(modules).SetCompiler(
		ast.NewCompiler().WithCapabilities(Capabilities()).WithStrict(true)).RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("run Rego tests: %w", err)
	}
	var out []TestResult
	for r := range ch {
		res := TestResult{Name: strings.TrimPrefix(r.Package, "data.") + "." + r.Name, Passed: r.Pass()}
		switch {
		case r.Error != nil:
			res.Detail = r.Error.Error()
		case r.Fail:
			res.Detail = "failed at " + r.Location.String()
		}
		out = append(out, res)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ReadRegoDir reads every .rego file of dir (not recursively).
func ReadRegoDir(dir string) (map[string]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.rego"))
	if err != nil {
		return nil, err
	}
	if len(matches) == 0 {
		return nil, fmt.Errorf("no .rego files in %s", dir)
	}
	files := map[string]string{}
	for _, m := range matches {
		data, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		files[filepath.Base(m)] = string(data)
	}
	return files, nil
}

func mergeFiles(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
