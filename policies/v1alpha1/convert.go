package v1alpha1

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/rollout-guard/rollout-guard/analysis"
	"github.com/rollout-guard/rollout-guard/policies"
)

// ToPolicy converts a RolloutPolicy into the policy the evaluator runs.
func (rp *RolloutPolicy) ToPolicy() (policies.Policy, error) {
	var params map[string]any
	if rp.Spec.Parameters != nil && len(rp.Spec.Parameters.Raw) > 0 {
		if err := json.Unmarshal(rp.Spec.Parameters.Raw, &params); err != nil {
			return policies.Policy{}, fmt.Errorf("RolloutPolicy %s: spec.parameters must be an object: %w", rp.Name, err)
		}
	}
	if err := rp.validateParameters(params); err != nil {
		return policies.Policy{}, err
	}
	enforcement := policies.Enforcement(rp.Spec.Enforcement)
	if enforcement == "" {
		enforcement = policies.Deny
	}
	p := policies.Policy{
		Name: rp.Name, Module: rp.Spec.Rego, Filename: rp.Name + ".rego",
		Settings: policies.Settings{Enforcement: enforcement, Parameters: params, Exemptible: rp.Spec.Exemptible, OnError: policies.OnError(rp.Spec.OnError)},
	}
	for _, k := range rp.Spec.Match.Kinds {
		p.Kinds = append(p.Kinds, string(k))
	}
	return p, nil
}

// Selectors returns the namespace and object selectors of the policy's match
// (labels.Everything() where none is set).
func (rp *RolloutPolicy) Selectors() (namespace, object labels.Selector, err error) {
	namespace, object = labels.Everything(), labels.Everything()
	if s := rp.Spec.Match.NamespaceSelector; s != nil {
		if namespace, err = metav1.LabelSelectorAsSelector(s); err != nil {
			return nil, nil, fmt.Errorf("RolloutPolicy %s: spec.match.namespaceSelector: %w", rp.Name, err)
		}
	}
	if s := rp.Spec.Match.ObjectSelector; s != nil {
		if object, err = metav1.LabelSelectorAsSelector(s); err != nil {
			return nil, nil, fmt.Errorf("RolloutPolicy %s: spec.match.objectSelector: %w", rp.Name, err)
		}
	}
	return namespace, object, nil
}

// ToException converts a RolloutPolicyException into what the evaluator applies.
func (e *RolloutPolicyException) ToException() (policies.Exception, error) {
	out := policies.Exception{
		Namespace: e.Namespace, Name: e.Name, Policies: e.Spec.Policies, Names: e.Spec.Workloads.Names,
		Reason: e.Spec.Reason, Expires: e.Spec.Expires.Time,
	}
	for _, k := range e.Spec.Workloads.Kinds {
		out.Kinds = append(out.Kinds, string(k))
	}
	if s := e.Spec.Workloads.Selector; s != nil {
		sel, err := metav1.LabelSelectorAsSelector(s)
		if err != nil {
			return policies.Exception{}, fmt.Errorf("RolloutPolicyException %s/%s: spec.workloads.selector: %w", e.Namespace, e.Name, err)
		}
		out.Selector = sel
	}
	return out, nil
}

// ToAnalysis checks and prepares a RolloutAnalysis; every problem is named by its field.
func (ra *RolloutAnalysis) ToAnalysis() (*analysis.Analysis, field.ErrorList) {
	s := analysis.Spec{Name: ra.Name, FailureLimit: int(ra.Spec.FailureLimit)}
	if ra.Spec.Interval != nil {
		s.Interval = ra.Spec.Interval.Duration
	}
	if ra.Spec.BakeTime != nil {
		s.BakeTime = &ra.Spec.BakeTime.Duration
	}
	for _, q := range ra.Spec.Queries {
		s.Queries = append(s.Queries, analysis.QuerySpec{Name: q.Name, Query: q.Query, Max: q.Max, Min: q.Min,
			MaxRatioToStable: q.MaxRatioToStable, Traffic: q.Traffic, MinTraffic: q.MinTraffic})
	}
	a, errs := analysis.Prepare(s)
	if sel := ra.Spec.Selector; sel != nil {
		if _, _, _, err := ra.Selects(); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("spec", "selector"), "", err.Error()))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return a, nil
}

// Selects returns what the analysis' selector matches: namespace and workload labels and kinds (nil: every kind).
// An analysis without a selector selects nothing (nil selectors): it applies only where a workload names it.
func (ra *RolloutAnalysis) Selects() (namespace, workload labels.Selector, kinds []string, err error) {
	sel := ra.Spec.Selector
	if sel == nil {
		return nil, nil, nil, nil
	}
	if sel.NamespaceSelector == nil && sel.WorkloadSelector == nil {
		return nil, nil, nil, fmt.Errorf("set namespaceSelector or workloadSelector ({} matches all): an analysis never applies to every workload by omission")
	}
	namespace, workload = labels.Everything(), labels.Everything()
	if sel.NamespaceSelector != nil {
		if namespace, err = metav1.LabelSelectorAsSelector(sel.NamespaceSelector); err != nil {
			return nil, nil, nil, fmt.Errorf("namespaceSelector: %w", err)
		}
	}
	if sel.WorkloadSelector != nil {
		if workload, err = metav1.LabelSelectorAsSelector(sel.WorkloadSelector); err != nil {
			return nil, nil, nil, fmt.Errorf("workloadSelector: %w", err)
		}
	}
	for _, k := range sel.Kinds {
		kinds = append(kinds, string(k))
	}
	return namespace, workload, kinds, nil
}
