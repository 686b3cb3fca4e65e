package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is rollout-guard.io/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "rollout-guard.io", Version: "v1alpha1"}

// AddToScheme registers the API's types with a scheme.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &RolloutPolicy{}, &RolloutPolicyList{}, &RolloutPolicyException{}, &RolloutPolicyExceptionList{}, &RolloutAnalysis{}, &RolloutAnalysisList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// RolloutPolicy is a Rego policy a platform team adds to rollout-guard.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=rp
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Enforcement",type=string,JSONPath=`.spec.enforcement`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Evaluating",type=string,JSONPath=`.status.conditions[?(@.type=="Evaluating")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RolloutPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RolloutPolicySpec   `json:"spec"`
	Status RolloutPolicyStatus `json:"status,omitempty"`
}

// RolloutPolicySpec is the policy.
type RolloutPolicySpec struct {
	// Rego is one module in package rollout_guard.<name, with - as _>, with
	// `deny contains msg if { ... }` and/or `warn contains msg if { ... }`
	// rules. A msg is a string or an object with msg, field, value, limit and fix.
	// +kubebuilder:validation:MinLength=1
	Rego string `json:"rego"`
	// Enforcement of the deny rules: deny rejects, warn admits with a
	// warning, dryrun admits and only records.
	// +kubebuilder:validation:Enum=deny;warn;dryrun
	// +kubebuilder:default=deny
	// +optional
	Enforcement string `json:"enforcement,omitempty"`
	// Match limits which workloads the policy judges.
	// +optional
	Match Match `json:"match,omitempty"`
	// ParameterSchema declares the policy's parameters, as an OpenAPI v3 schema (what a CRD's
	// openAPIV3Schema holds; a ConstraintTemplate's parameters are declared the same way). spec.parameters must
	// validate against it when the policy is applied, and a key an object schema does not declare is refused unless
	// it sets additionalProperties or x-kubernetes-preserve-unknown-fields: a misspelt parameter is an error, not a
	// rule silently turned off.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	ParameterSchema *runtime.RawExtension `json:"parameterSchema,omitempty"`
	// Parameters are passed to the policy as input.parameters.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	Parameters *runtime.RawExtension `json:"parameters,omitempty"`
	// Exemptible lets an object waive this policy with the
	// rollout-guard.io/exempt annotation and a reason, when the cluster
	// allows annotation exemptions (policies.annotationExemptions).
	// +optional
	Exemptible bool `json:"exemptible,omitempty"`
	// OnError is the verdict when the policy cannot be evaluated on a request
	// (a built-in error such as to_number on a missing value, its deadline):
	// allow (the default) admits the request with a warning, deny applies the
	// policy's enforcement. Either way the other policies' verdicts stand, and
	// the failure is a metric and this policy's Evaluating condition.
	// +kubebuilder:validation:Enum=allow;deny
	// +kubebuilder:default=allow
	// +optional
	OnError string `json:"onError,omitempty"`
}

// Match selects the workloads a policy applies to. Empty fields match all.
type Match struct {
	// Kinds of apps/v1 workloads.
	// +optional
	Kinds []WorkloadKind `json:"kinds,omitempty"`
	// NamespaceSelector matches the labels of the workload's namespace.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// ObjectSelector matches the workload's own labels.
	// +optional
	ObjectSelector *metav1.LabelSelector `json:"objectSelector,omitempty"`
}

// WorkloadKind is a kind rollout-guard validates.
// +kubebuilder:validation:Enum=Deployment;StatefulSet;DaemonSet
type WorkloadKind string

// RolloutPolicyStatus reports whether the policy compiled and is enforced.
type RolloutPolicyStatus struct {
	// ObservedGeneration is the generation the conditions describe.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready is True when the current spec compiled and is
	// enforced; False with the compiler's message otherwise (the last good
	// version, if any, stays enforced). Evaluating is False while requests
	// fail to evaluate (an error, the deadline) and the policy's onError
	// verdict stands in, with the count, the times and the last error.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// RolloutPolicyList is a list of RolloutPolicies.
//
// +kubebuilder:object:root=true
type RolloutPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RolloutPolicy `json:"items"`
}
