package policies

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	rtmetrics "runtime/metrics"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/print"
)

// forbidden built-ins reach outside the process or make verdicts depend on
// more than the request: a policy using one is rejected when compiled. The
// JSON Schema built-ins are among them because they resolve a schema's $ref,
// and a $ref may name an http:// or file:// URL: a policy could make the
// webhook fetch a URL or read a local file into a denial message.
var forbiddenPrefixes = []string{"http.send", "net.", "opa.runtime", "rand.", "uuid.", "time.now_ns", "trace",
	"json.match_schema", "json.verify_schema"}

// Capabilities are OPA's capabilities without the forbidden built-ins, and
// with no host any built-in may reach.
func Capabilities() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.AllowNet = []string{} // empty, not nil: nil would allow every host
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
	// Failed: the policy could not be evaluated (an error, its deadline); the violation is its onError verdict.
	Failed bool `json:"failed,omitempty"`
	// Omitted counts further results of the same rule that were not read (at most maxResultsPerRule are).
	Omitted int `json:"omitted,omitempty"`
}

// Evaluator runs a fixed set of policies. It is immutable and safe for
// concurrent use; a changed policy set means a new Evaluator.
type Evaluator struct {
	policies map[string]Policy
	names    []string
	// byKind holds a query for each kind some policy is limited to, with the
	// policies that apply to that kind; other runs the policies that apply to
	// every kind. A policy for StatefulSets is then never evaluated on a
	// Deployment.
	byKind  map[string]*query
	other   *query
	timeout time.Duration

	// prepare makes a query over the policies applies selects; alone holds the one-policy queries it made, used
	// when a query over several fails, so that one failing policy does not take the others' verdicts with it.
	prepare func(applies func(Policy) bool) (*query, error)
	aloneMu sync.Mutex
	alone   map[string]*query
	// memoryLimit bounds what one evaluation may allocate; 0: no bound.
	memoryLimit uint64

	// skips is the only state an Evaluator changes, and it may share it with others (WithQuarantine).
	skips *Quarantine
}

// Quarantine holds the policies that ran out of their deadline or memory limit, skipped until a while later: one
// looping policy must not make every request wait for its deadline, nor one hungry policy make every request
// allocate its limit. It outlives an Evaluator: the Evaluators built for one policy set share one (WithQuarantine),
// so that a set rebuilt while a policy fails, because another policy changed or a status was written, keeps
// skipping it, whichever Evaluator the failing request ran on. A policy whose module or settings changed since
// starts afresh.
type Quarantine struct {
	skips sync.Map    // policy name -> skip
	any   atomic.Bool // once set, stays set: then the map is read
}

// NewQuarantine is an empty Quarantine.
func NewQuarantine() *Quarantine { return &Quarantine{} }

// skip is why, and until when, a policy is not evaluated, and the policy as it was then.
type skip struct {
	until    time.Time
	why      string
	module   string
	settings Settings
}

// quarantine is how long a policy that exceeded its deadline or its memory is skipped (its onError verdict stands in).
const quarantine = time.Minute

// Caps on what one policy's results may add to an answer.
const (
	maxResultsPerRule = 100
	maxFieldBytes     = 1024
)

// query is one prepared query over a set of policies.
type query struct {
	prepared rego.PreparedEvalQuery
	// rules are the query's results, in order: an array rather than an
	// object keyed by policy, so that reading them needs no lookups.
	rules []ruleRef
	// policies are the query's policies, each once, in order.
	policies []string
}

// ruleRef is one deny or warn rule of a policy.
type ruleRef struct {
	policy string
	warn   bool
}

// paramsRoot is where each policy's parameters live in data. A policy reads
// input.parameters; the compiler rewrites that to its own entry here, so one
// query evaluates every policy with its own parameters.
const paramsRoot = "rollout_guard_params"

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

// New compiles and prepares the policies as one query. Each policy's
// references to input.parameters are rewritten to its own parameters in
// data: cheaper than "with", which copies the input and defeats OPA's caching.
func New(ctx context.Context, policies []Policy, timeout time.Duration, opts ...Option) (*Evaluator, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	lib, err := libraryModule()
	if err != nil {
		return nil, err
	}
	caps := Capabilities()
	parse := func(file, src string) (*ast.Module, error) {
		return ast.ParseModuleWithOpts(file, src, ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: caps})
	}
	libModule, err := parse("rego/lib.rego", lib)
	if err != nil {
		return nil, fmt.Errorf("built-in library: %w", err)
	}
	modules := map[string]*ast.Module{"rego/lib.rego": libModule}
	e := &Evaluator{policies: map[string]Policy{}, timeout: timeout, alone: map[string]*query{}, memoryLimit: o.memoryLimit, skips: o.skips}
	if e.skips == nil {
		e.skips = NewQuarantine()
	}
	allParams := map[string]any{}
	rulesOf := map[string]map[string]bool{}
	packages := map[string]string{libraryPackage: "the built-in library"}
	for _, p := range policies {
		if _, dup := e.policies[p.Name]; dup {
			return nil, &CompileError{Policy: p.Name, Err: errors.New("another policy has the same name")}
		}
		// Rules of one package merge: a policy sharing a package with another (lib, probes_required beside the
		// built-in probes-required) would change that one's rules.
		if other, taken := packages[Package(p.Name)]; taken {
			return nil, &CompileError{Policy: p.Name, Err: fmt.Errorf("its package %s is taken by %s: choose another name", Package(p.Name), other)}
		}
		packages[Package(p.Name)] = "policy " + p.Name
		module, err := parse(p.Filename, p.Module)
		if err != nil {
			return nil, &CompileError{Policy: p.Name, Err: err}
		}
		if got, want := strings.TrimPrefix(module.Package.Path.String(), "data."), Package(p.Name); got != want {
			return nil, &CompileError{Policy: p.Name, Err: fmt.Errorf("%s:%d: the module declares package %s; policy %s must declare package %s", p.Filename, module.Package.Location.Row, got, p.Name, want)}
		}
		if err := ownDataOnly(module, Package(p.Name)); err != nil {
			return nil, &CompileError{Policy: p.Name, Err: fmt.Errorf("%s: %w", p.Filename, err)}
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
		params := p.Settings.Parameters
		if params == nil {
			params = map[string]any{}
		}
		allParams[p.Name] = params
		constants, err := ast.InterfaceToValue(params)
		if err != nil {
			return nil, &CompileError{Policy: p.Name, Err: fmt.Errorf("parameters: %w", err)}
		}
		if err := rewriteParameters(module, func(ref ast.Ref) (ast.Value, error) {
			if len(ref) >= 2 && ref[0].Equal(ast.InputRootDocument) && ref[1].Equal(ast.StringTerm("parameters")) {
				return parameterRef(p.Name, constants, ref[2:]), nil
			}
			return ref, nil
		}); err != nil {
			return nil, &CompileError{Policy: p.Name, Err: err}
		}
		modules[p.Filename] = module
		rulesOf[p.Name] = rules
		e.policies[p.Name] = p
		e.names = append(e.names, p.Name)
	}
	slices.Sort(e.names)
	compiler := ast.NewCompiler().WithCapabilities(caps).WithStrict(true).WithEnablePrintStatements(o.print != nil)
	if compiler.Compile(modules); compiler.Failed() {
		name := "(policy set)"
		if len(policies) == 1 {
			name = policies[0].Name
		}
		return nil, &CompileError{Policy: name, Err: compiler.Errors}
	}
	store := inmem.NewFromObjectWithOpts(map[string]any{paramsRoot: allParams}, inmem.OptReturnASTValuesOnRead(true))
	prepare := func(applies func(Policy) bool) (*query, error) {
		q := &query{}
		var entries []string
		for _, name := range e.names {
			if !applies(e.policies[name]) {
				continue
			}
			q.policies = append(q.policies, name)
			for _, r := range []string{"deny", "warn"} {
				if rulesOf[name][r] {
					entries = append(entries, fmt.Sprintf("data.%s.%s", Package(name), r))
					q.rules = append(q.rules, ruleRef{policy: name, warn: r == "warn"})
				}
			}
		}
		regoOpts := []func(*rego.Rego){
			rego.Compiler(compiler), rego.Store(store),
			rego.Capabilities(caps), rego.Strict(true), rego.StrictBuiltinErrors(true),
			rego.SetRegoVersion(ast.RegoV1), rego.Query("[" + strings.Join(entries, ", ") + "]"),
		}
		if o.print != nil {
			byFile := map[string]string{}
			for _, p := range policies {
				byFile[p.Filename] = p.Name
			}
			regoOpts = append(regoOpts, rego.EnablePrintStatements(true), rego.PrintHook(printHook{byFile: byFile, f: o.print}))
		}
		prepared, err := rego.New(regoOpts...).PrepareForEval(ctx)
		if err != nil {
			return nil, &CompileError{Policy: "(policy set)", Err: err}
		}
		q.prepared = prepared
		return q, nil
	}
	e.prepare = prepare
	if e.other, err = prepare(func(p Policy) bool { return len(p.Kinds) == 0 }); err != nil {
		return nil, err
	}
	e.byKind = map[string]*query{}
	for _, p := range policies {
		for _, kind := range p.Kinds {
			if _, done := e.byKind[kind]; done {
				continue
			}
			if e.byKind[kind], err = prepare(func(p Policy) bool { return len(p.Kinds) == 0 || slices.Contains(p.Kinds, kind) }); err != nil {
				return nil, err
			}
		}
	}
	return e, nil
}

// Option changes how New prepares the policies.
type Option func(*options)

type options struct {
	print       func(policy, msg string)
	memoryLimit uint64
	skips       *Quarantine
}

// WithQuarantine keeps the policies skipped in q, shared with the other Evaluators given q; without it, an
// Evaluator keeps its own.
func WithQuarantine(q *Quarantine) Option {
	return func(o *options) { o.skips = q }
}

// WithMemoryLimit stops an evaluation once it has allocated more than limit bytes, as its deadline stops it: the
// policy that did yields its onError verdict and is skipped for a while. Go counts allocations per process, not per
// evaluation, so what evaluations running at the same time allocate counts for each of them: the limit is a bound
// for policies that build huge values, far above what an ordinary evaluation allocates (tens of KiB), never a
// budget to tune close to it.
func WithMemoryLimit(limit uint64) Option {
	return func(o *options) { o.memoryLimit = limit }
}

// WithPrint sends the policies' print() output to f, with the name of the policy that printed: for policy authors'
// tests (suites), never for admission, where print statements are compiled out.
func WithPrint(f func(policy, msg string)) Option {
	return func(o *options) { o.print = f }
}

// printHook names the policy that printed by the file its module was compiled from.
type printHook struct {
	byFile map[string]string
	f      func(policy, msg string)
}

func (h printHook) Print(ctx print.Context, msg string) error {
	policy := ""
	if ctx.Location != nil {
		policy = h.byFile[ctx.Location.File]
	}
	h.f(policy, msg)
	return nil
}

// libraryPackage is the built-in library's package, which every policy may import.
const libraryPackage = "rollout_guard.lib"

// ownDataOnly refuses a module that reads data outside its own package and the library: another policy's rules or
// parameters are not its to read.
func ownDataOnly(module *ast.Module, pkg string) error {
	allowed := []ast.Ref{ast.MustParseRef("data." + pkg), ast.MustParseRef("data." + libraryPackage)}
	var bad ast.Ref
	ast.WalkRefs(module, func(ref ast.Ref) bool {
		if bad != nil || !ref[0].Equal(ast.DefaultRootDocument) {
			return bad != nil
		}
		for _, a := range allowed {
			if ref.HasPrefix(a) {
				return false
			}
		}
		bad = ref
		return true
	})
	if bad == nil {
		return nil
	}
	row := 0
	if bad[0].Location != nil {
		row = bad[0].Location.Row
	}
	return fmt.Errorf("line %d: %s reads outside the policy's own package: a policy may read input, its own rules and data.%s only", row, bad, libraryPackage)
}

// rewriteParameters applies f to every reference of module, including those in `some x in ...` declarations, which
// ast.TransformRefs does not enter: left there, input.parameters would be undefined at evaluation, and a rule such as
// `some label in input.parameters.labels` would silently never fire.
func rewriteParameters(module *ast.Module, f func(ast.Ref) (ast.Value, error)) error {
	var err error
	ast.WalkExprs(module, func(e *ast.Expr) bool {
		decl, ok := e.Terms.(*ast.SomeDecl)
		if !ok || err != nil {
			return err != nil
		}
		for _, sym := range decl.Symbols {
			var v any
			if v, err = ast.TransformRefs(sym.Value, f); err != nil {
				return true
			}
			if sym.Value, ok = v.(ast.Value); !ok {
				err = fmt.Errorf("rewrite of %v gave %T", sym, v)
				return true
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	_, err = ast.TransformRefs(module, f)
	return err
}

// parameterRef replaces a policy's reference to input.parameters<path>.
// Parameters are fixed for the evaluator's life, so a path that names a
// parameter becomes its value, a constant in the compiled policy: a lookup
// at every evaluation cost more than the rule it fed. Other paths (a missing
// parameter, a variable key) read the policy's own entry in data.
func parameterRef(policy string, constants ast.Value, path ast.Ref) ast.Value {
	if v, err := constants.Find(path); err == nil {
		return v
	}
	return append(ast.MustParseRef("data."+paramsRoot), append(ast.Ref{ast.StringTerm(policy)}, path...)...)
}

// Policies returns the names of the policies the evaluator runs.
func (e *Evaluator) Policies() []string { return slices.Clone(e.names) }

// Evaluate runs every policy on input: operation, userInfo, object and
// oldObject as generic JSON values. Parameters are added per policy, and
// rollout facts (see rolloutFacts) as input.rollout. Only policies whose
// Kinds include kind (or that list none) are reported.
//
// Policies are isolated: when the query over all of them fails, each runs
// alone, and one that fails (a built-in error, its deadline, a result it
// cannot return) yields its onError verdict as a Violation with Failed set;
// the others' verdicts stand. One that ran out of its deadline is skipped for
// a minute. An error is returned only when evaluation itself broke (a panic).
func (e *Evaluator) Evaluate(ctx context.Context, input map[string]any, kind string) (violations []Violation, err error) {
	defer func() {
		if p := recover(); p != nil {
			violations, err = nil, fmt.Errorf("policy evaluation panicked: %v", p)
		}
	}()
	if object, ok := input["object"].(map[string]any); ok {
		if facts := rolloutFacts(object); facts != nil {
			input = maps.Clone(input)
			input["rollout"] = facts
		}
	}
	// The input is plain JSON values, so OPA may convert it lazily, only the
	// parts policies read (most of an object never is); EvalInput would
	// deep-copy and convert all of it first.
	parsed := ast.LazyObject(input)
	q := e.byKind[kind]
	if q == nil {
		q = e.other
	}
	if !e.anySkipped(q) {
		if violations, err = e.run(ctx, q, parsed); err == nil {
			return sortViolations(violations), nil
		}
	}
	return sortViolations(e.isolated(ctx, q, parsed)), nil
}

// run evaluates one query within the evaluator's deadline and memory limit.
func (e *Evaluator) run(ctx context.Context, q *query, input ast.Value) ([]Violation, error) {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	if e.memoryLimit > 0 {
		defer watchMemory(e.memoryLimit, stop)()
	}
	// No metrics: OPA would otherwise make a fresh set of timers on every evaluation.
	rs, err := q.prepared.Eval(ctx, rego.EvalParsedInput(input), rego.EvalMetrics(metrics.NoOp()), rego.EvalGenerateJSON(keepAST))
	if err != nil {
		var memory *memoryError
		if errors.As(context.Cause(ctx), &memory) {
			return nil, memory
		}
		if ctx.Err() != nil {
			return nil, &deadlineError{timeout: e.timeout, err: err}
		}
		return nil, err
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, nil
	}
	results, _ := rs[0].Expressions[0].Value.(*ast.Array)
	if results == nil || results.Len() != len(q.rules) {
		return nil, fmt.Errorf("policy evaluation returned %v, not one result per rule", rs[0].Expressions[0].Value)
	}
	var violations []Violation
	for i, r := range q.rules {
		p := e.policies[r.policy]
		found, _ := results.Elem(i).Value.(ast.Set)
		if found == nil || found.Len() == 0 {
			continue
		}
		enforcement := p.Settings.Enforcement
		if r.warn && enforcement == Deny {
			enforcement = Warn
		}
		var convErr error
		read := 0
		found.Until(func(t *ast.Term) bool {
			if read == maxResultsPerRule {
				violations[len(violations)-1].Omitted = found.Len() - read
				return true
			}
			read++
			item, err := ast.JSON(t.Value)
			if err != nil {
				convErr = err
				return true
			}
			v := capped(toViolation(item))
			v.Policy, v.Enforcement, v.Exemptible = r.policy, enforcement, p.Settings.Exemptible
			violations = append(violations, v)
			return false
		})
		if convErr != nil {
			return nil, fmt.Errorf("policy %s: read a result: %w", r.policy, convErr)
		}
	}
	return violations, nil
}

// isolated runs each policy of q alone, so that one that fails yields its onError verdict and no more.
func (e *Evaluator) isolated(ctx context.Context, q *query, input ast.Value) []Violation {
	var violations []Violation
	for _, name := range q.policies {
		if sk, skipped := e.skipped(name); skipped {
			violations = append(violations, e.failure(name, fmt.Errorf("skipped until %s: %s", sk.until.UTC().Format(time.RFC3339), sk.why)))
			continue
		}
		alone, err := e.queryAlone(name)
		if err == nil {
			var vs []Violation
			if vs, err = e.run(ctx, alone, input); err == nil {
				violations = append(violations, vs...)
				continue
			}
		}
		var deadline *deadlineError
		var memory *memoryError
		switch {
		case errors.As(err, &deadline) && ctx.Err() == nil:
			e.skip(name, fmt.Sprintf("it exceeded its %s deadline", e.timeout))
		case errors.As(err, &memory):
			e.skip(name, memory.Error())
		}
		violations = append(violations, e.failure(name, err))
	}
	return violations
}

// failure is a policy's onError verdict: deny when it fails closed (built-ins by default), a warning otherwise;
// never stronger than the policy's own enforcement.
func (e *Evaluator) failure(name string, err error) Violation {
	p := e.policies[name]
	v := Violation{Policy: name, Failed: true, Exemptible: p.Settings.Exemptible}
	if p.Settings.FailsClosed(p.BuiltIn) {
		v.Enforcement = p.Settings.Enforcement
		v.Message = "the policy could not be evaluated, and it denies what it cannot judge (onError: deny): " + err.Error()
	} else {
		v.Enforcement = Warn
		if p.Settings.Enforcement == DryRun {
			v.Enforcement = DryRun
		}
		v.Message = "the policy could not be evaluated, so it did not judge this request (onError: allow): " + err.Error()
	}
	v.Message = Truncate(v.Message, maxFieldBytes)
	return v
}

// skip quarantines a policy, for the Evaluators sharing e's Quarantine.
func (e *Evaluator) skip(name, why string) {
	p := e.policies[name]
	e.skips.skips.Store(name, skip{until: time.Now().Add(quarantine), why: why, module: p.Module, settings: p.Settings})
	e.skips.any.Store(true)
}

func (e *Evaluator) anySkipped(q *query) bool {
	if !e.skips.any.Load() {
		return false // the common case, without a lookup per policy
	}
	for _, name := range q.policies {
		if _, skipped := e.skipped(name); skipped {
			return true
		}
	}
	return false
}

func (e *Evaluator) skipped(name string) (skip, bool) {
	v, ok := e.skips.skips.Load(name)
	if !ok {
		return skip{}, false
	}
	sk := v.(skip)
	if time.Now().After(sk.until) {
		e.skips.skips.Delete(name)
		return skip{}, false
	}
	// a changed policy starts afresh; the old one may still run on an Evaluator not yet replaced, so its skip stays
	p := e.policies[name]
	return sk, sk.module == p.Module && reflect.DeepEqual(sk.settings, p.Settings)
}

// queryAlone is the prepared query of one policy, made on first use.
func (e *Evaluator) queryAlone(name string) (*query, error) {
	e.aloneMu.Lock()
	defer e.aloneMu.Unlock()
	if q, ok := e.alone[name]; ok {
		return q, nil
	}
	q, err := e.prepare(func(p Policy) bool { return p.Name == name })
	if err != nil {
		return nil, err
	}
	e.alone[name] = q
	return q, nil
}

type deadlineError struct {
	timeout time.Duration
	err     error
}

func (d *deadlineError) Error() string {
	return fmt.Sprintf("policy evaluation exceeded its %s deadline: %v", d.timeout, d.err)
}
func (d *deadlineError) Unwrap() error { return d.err }

type memoryError struct{ limit uint64 }

func (m *memoryError) Error() string {
	return fmt.Sprintf("policy evaluation allocated more than its memory limit of %d MiB", m.limit>>20)
}

// memoryTick is how often a running evaluation's allocations are looked at. Most evaluations end before the first
// look, and cost one timer; a policy building a huge value is stopped within a tick of passing its limit.
const memoryTick = 5 * time.Millisecond

// watchMemory calls stop once the process has allocated more than limit bytes since the watch's first tick, until
// the returned function is called. The count starts at the first tick: an evaluation that ends sooner, the common
// case, never reads the runtime's metrics.
func watchMemory(limit uint64, stop context.CancelCauseFunc) func() {
	w := &memoryWatch{limit: limit, stop: stop}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(memoryTick, w.tick)
	return w.end
}

type memoryWatch struct {
	limit uint64
	stop  context.CancelCauseFunc

	mu    sync.Mutex
	timer *time.Timer
	base  uint64 // allocations at the first tick; 0 before it
	ended bool
}

func (w *memoryWatch) tick() {
	sample := []rtmetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	rtmetrics.Read(sample)
	if sample[0].Value.Kind() != rtmetrics.KindUint64 {
		return // a runtime without the metric: the deadline alone bounds the evaluation
	}
	allocated := sample[0].Value.Uint64()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ended {
		return
	}
	if w.base == 0 {
		w.base = allocated
	} else if allocated-w.base > w.limit {
		w.stop(&memoryError{limit: w.limit})
		return
	}
	w.timer.Reset(memoryTick)
}

func (w *memoryWatch) end() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ended = true
	w.timer.Stop()
}

func sortViolations(violations []Violation) []Violation {
	slices.SortStableFunc(violations, func(a, b Violation) int {
		return strings.Compare(a.Policy+"\x00"+a.Field+"\x00"+a.Message, b.Policy+"\x00"+b.Field+"\x00"+b.Message)
	})
	return violations
}

// capped bounds the text a result may put in an answer: a policy cannot make a message of megabytes.
func capped(v Violation) Violation {
	v.Message, v.Field = Truncate(v.Message, maxFieldBytes), Truncate(v.Field, maxFieldBytes)
	v.Limit, v.Fix = Truncate(v.Limit, maxFieldBytes), Truncate(v.Fix, maxFieldBytes)
	if s, ok := v.Value.(string); ok {
		v.Value = Truncate(s, maxFieldBytes)
	} else if v.Value != nil {
		if b, err := json.Marshal(v.Value); err != nil || len(b) > maxFieldBytes {
			v.Value = Truncate(string(b), maxFieldBytes)
		}
	}
	return v
}

// keepAST leaves the query's result as OPA's value: most policies find
// nothing, and converting their empty sets to Go values on every request
// cost more than reading the few non-empty ones directly.
func keepAST(t *ast.Term, _ *rego.EvalContext) (any, error) { return t.Value, nil }

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
