package v1alpha1

import (
	"encoding/json"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

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
