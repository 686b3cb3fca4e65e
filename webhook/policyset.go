package webhook

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/rollout-guard/rollout-guard/policies"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// PolicySet is the policies in force: the built-ins plus the last good
// version of every RolloutPolicy. Requests read it without locking; a change
// compiles a new set and swaps it in whole.
type PolicySet struct {
	builtins []policies.Policy
	timeout  time.Duration
	// evalOpts: the memory limit of one evaluation, and the policies skipped, kept across rebuilds
	evalOpts []policies.Option

	mu      sync.Mutex // serialises rebuilds
	current atomic.Pointer[compiledSet]
	// custom are the RolloutPolicies of the set in force, under mu.
	custom []*v1alpha1.RolloutPolicy
}

type compiledSet struct {
	eval *policies.Evaluator
	// selectors of RolloutPolicies, by policy name; built-ins match everything.
	selectors map[string]selectors
}

type selectors struct {
	namespace, object labels.Selector
}

// NewPolicySet compiles the built-in policies.
func NewPolicySet(ctx context.Context, cfg policies.Config) (*PolicySet, error) {
	builtins, err := policies.BuiltIns(cfg.BuiltIns)
	if err != nil {
		return nil, err
	}
	s := &PolicySet{builtins: builtins, timeout: time.Duration(cfg.EvaluationTimeoutMillis) * time.Millisecond,
		evalOpts: []policies.Option{policies.WithMemoryLimit(uint64(cfg.EvaluationMemoryMiB) << 20), policies.WithQuarantine(policies.NewQuarantine())}}
	if err := s.Replace(ctx, nil); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *PolicySet) get() *compiledSet { return s.current.Load() }

// Replace compiles the built-ins with custom and, if that succeeds, makes it
// the set in force. On error the previous set stays.
func (s *PolicySet) Replace(ctx context.Context, custom []*v1alpha1.RolloutPolicy) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := slices.Clone(s.builtins)
	sels := map[string]selectors{}
	for _, rp := range custom {
		p, err := rp.ToPolicy()
		if err != nil {
			return err
		}
		var sel selectors
		if sel.namespace, sel.object, err = rp.Selectors(); err != nil {
			return err
		}
		all = append(all, p)
		sels[p.Name] = sel
	}
	eval, err := policies.New(ctx, all, s.timeout, s.evalOpts...)
	if err != nil {
		return err
	}
	s.current.Store(&compiledSet{eval: eval, selectors: sels})
	s.custom = custom
	return nil
}

// CheckWith compiles rp together with the set in force, rp replacing its own earlier version: a policy that
// compiles alone can still conflict with the others, and admitting it would leave a set that cannot be built.
func (s *PolicySet) CheckWith(ctx context.Context, rp *v1alpha1.RolloutPolicy) error {
	s.mu.Lock()
	others := slices.DeleteFunc(slices.Clone(s.custom), func(o *v1alpha1.RolloutPolicy) bool { return o.Name == rp.Name })
	s.mu.Unlock()
	all := slices.Clone(s.builtins)
	for _, o := range append(others, rp) {
		p, err := o.ToPolicy()
		if err != nil {
			return err
		}
		all = append(all, p)
	}
	_, err := policies.New(ctx, all, s.timeout, s.evalOpts...)
	return err
}

// CheckRolloutPolicy compiles one RolloutPolicy on its own, as its admission does.
func CheckRolloutPolicy(ctx context.Context, rp *v1alpha1.RolloutPolicy) error {
	p, err := rp.ToPolicy()
	if err != nil {
		return err
	}
	if _, _, err := rp.Selectors(); err != nil {
		return err
	}
	// by package, not name: probes_required would share the built-in probes-required's package, lib the library's
	for _, b := range append(slices.Clone(policies.BuiltInNames), "lib") {
		if policies.Package(p.Name) == policies.Package(b) {
			return fmt.Errorf("RolloutPolicy %s: the name is taken by a built-in policy or the built-in library (%s)", p.Name, b)
		}
	}
	return policies.Check(ctx, p)
}

// Names lists the policies in force.
func (s *PolicySet) Names() []string { return s.get().eval.Policies() }
