package policies

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// forbidden built-ins reach outside the process or make verdicts depend on
// more than the request: a policy using one is rejected when compiled.
var forbiddenPrefixes = []string{"http.send", "net.", "opa.runtime", "rand.", "uuid.", "time.now_ns", "trace"}

// Capabilities are OPA's capabilities without the forbidden built-ins.
func Capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(slices.Clone(caps.Builtins), func(b *ast.Builtin) bool {
		for _, p := range forbiddenPrefixes {
			if strings.HasPrefix(b.Name, p) {
				return true
			}
		}
		return false
	})
	return caps
}

// Violation is one rule a request breaks.
type Violation struct {
	Policy      string      `json:"policy"`
	Enforcement Enforcement `json:"enforcement"`
	Field       string      `json:"field,omitempty"`
	Value       any         `json:"value,omitempty"`
	Limit       string      `json:"limit,omitempty"`
	Message     string      `json:"message"`
	Fix         string      `json:"fix,omitempty"`
	// Exemptible says whether the object may waive this policy.
	Exemptible bool `json:"-"`
}

// Evaluator runs a fixed set of policies. It is immutable and safe for
// concurrent use; a changed policy set means a new Evaluator.
type Evaluator struct {
	query    rego.PreparedEvalQuery
	policies map[string]Policy
	timeout  time.Duration
}

// CompileError is a policy that does not compile, with the compiler's message.
type CompileError struct {
	Policy string
	Err    error
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("policy %s does not compile: %v", e.Policy, e.Err)
}

func (e *CompileError) Unwrap() error { return e.Err }

// Check compiles one policy on its own (with the shared library), as
// admission of a RolloutPolicy does. It returns a *CompileError.
func Check(ctx context.Context, p Policy) error {
	_, err := New(ctx, []Policy{p}, time.Second)
	return err
}

// New compiles and prepares the policies.
func New(ctx context.Context, policies []Policy, timeout time.Duration) (*Evaluator, error) {
	lib, err := libraryModule()
	if err != nil {
		return nil, err
	}
	opts := []func(*rego.Rego){
		rego.Capabilities(Capabilities()),
		rego.Strict(true),
		rego.StrictBuiltinErrors(true),
		rego.SetRegoVersion(ast.RegoV1),
		rego.Module("rego/lib.rego", lib),
	}
	var results []string
	byName := map[string]Policy{}
	for _, p := range policies {
		if _, dup := byName[p.Name]; dup {
			return nil, &CompileError{Policy: p.Name, Err: errors.New("another policy has the same name")}
		}
		module, err := ast.ParseModuleWithOpts(p.Filename, p.Module, ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: Capabilities()})
		if err != nil {
			return nil, &CompileError{Policy: p.Name, Err: err}
		}
		if got, want := strings.TrimPrefix(module.Package.Path.String(), "data."), Package(p.Name); got != want {
			return nil, &CompileError{Policy: p.Name, Err: fmt.Errorf("%s:%d: the module declares package %s; policy %s must declare package %s", p.Filename, module.Package.Location.Row, got, p.Name, want)}
		}
		rules := map[string]bool{}
		for _, r := range module.Rules {
			if ref := r.Head.Ref(); len(ref) > 0 {
				if v, ok := ref[0].Value.(ast.Var); ok {
					rules[string(v)] = true
				}
			}
		}
		if !rules["deny"] && !rules["warn"] {
			return nil, &CompileError{Policy: p.Name, Err: fmt.Errorf("%s: the module has no deny or warn rule", p.Filename)}
		}
		params, err := json.Marshal(p.Settings.Parameters)
		if err != nil {
			return nil, &CompileError{Policy: p.Name, Err: fmt.Errorf("parameters: %w", err)}
		}
		if p.Settings.Parameters == nil {
			params = []byte("{}")
		}
		// One aggregate query evaluates every policy, each with its own parameters.
		var parts []string
		for _, r := range []string{"deny", "warn"} {
			ref := "[]"
			if rules[r] {
				ref = fmt.Sprintf("data.%s.%s with input.parameters as %s", Package(p.Name), r, params)
			}
			parts = append(parts, fmt.Sprintf("%s := %s", r, ref))
		}
		results = append(results, fmt.Sprintf("results[%q] := {\"deny\": deny, \"warn\": warn} if {\n\t%s\n}", p.Name, strings.Join(parts, "\n\t")))
		opts = append(opts, rego.ParsedModule(module))
		byName[p.Name] = p
	}
	aggregate := "package rollout_guard_eval\n\nresults := {} if false\n"
	if len(results) > 0 {
		aggregate = "package rollout_guard_eval\n\n" + strings.Join(results, "\n\n") + "\n"
	}
	opts = append(opts, rego.Module("rollout_guard_eval.rego", aggregate), rego.Query("data.rollout_guard_eval.results"))
	prepared, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		name := "(policy set)"
		if len(policies) == 1 {
			name = policies[0].Name
		}
		return nil, &CompileError{Policy: name, Err: err}
	}
	return &Evaluator{query: prepared, policies: byName, timeout: timeout}, nil
}

// Policies returns the names of the policies the evaluator runs.
func (e *Evaluator) Policies() []string {
	names := make([]string, 0, len(e.policies))
	for n := range e.policies {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Policy returns the named policy.
func (e *Evaluator) Policy(name string) (Policy, bool) {
	p, ok := e.policies[name]
	return p, ok
}

// Evaluate runs every policy on input: operation, userInfo, object and
// oldObject as generic JSON values (parameters are added per policy). Only policies whose Kinds include
// kind (or that list none) are reported. An error (deadline, built-in error,
// panic) is an error decision: the caller must not treat it as an allow.
func (e *Evaluator) Evaluate(ctx context.Context, input map[string]any, kind string) (violations []Violation, err error) {
	defer func() {
		if p := recover(); p != nil {
			violations, err = nil, fmt.Errorf("policy evaluation panicked: %v", p)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	rs, err := e.query.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("policy evaluation exceeded its %s deadline: %w", e.timeout, err)
		}
		return nil, fmt.Errorf("policy evaluation failed: %w", err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil
	}
	results, _ := rs[0].Expressions[0].Value.(map[string]any)
	for _, name := range e.Policies() {
		p := e.policies[name]
		if len(p.Kinds) > 0 && !slices.Contains(p.Kinds, kind) {
			continue
		}
		r, _ := results[name].(map[string]any)
		for _, rule := range []string{"deny", "warn"} {
			enforcement := p.Settings.Enforcement
			if rule == "warn" && enforcement == Deny {
				enforcement = Warn
			}
			for _, item := range asSlice(r[rule]) {
				v := toViolation(item)
				v.Policy, v.Enforcement, v.Exemptible = name, enforcement, p.Settings.Exemptible
				violations = append(violations, v)
			}
		}
	}
	slices.SortStableFunc(violations, func(a, b Violation) int {
		return strings.Compare(a.Policy+"\x00"+a.Field+"\x00"+a.Message, b.Policy+"\x00"+b.Field+"\x00"+b.Message)
	})
	return violations, nil
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// toViolation reads a rule's result: a string message, or an object with
// msg and optionally field, value, limit and fix.
func toViolation(item any) Violation {
	switch t := item.(type) {
	case string:
		return Violation{Message: t}
	case map[string]any:
		v := Violation{Value: t["value"]}
		v.Message, _ = t["msg"].(string)
		v.Field, _ = t["field"].(string)
		v.Limit, _ = t["limit"].(string)
		v.Fix, _ = t["fix"].(string)
		if v.Message == "" {
			b, _ := json.Marshal(t)
			v.Message = string(b)
		}
		return v
	}
	b, _ := json.Marshal(item)
	return Violation{Message: string(b)}
}
