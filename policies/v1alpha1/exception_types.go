package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RolloutPolicyException waives named policies for some workloads of its namespace, for a stated reason, until a
// date. It is an object of its own, not an annotation on the workload, so that who may grant one is an RBAC
// decision: the chart's exception-granter ClusterRole, which is not aggregated into edit or admin.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced,shortName=rpe
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Policies",type=string,JSONPath=`.spec.policies`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.spec.expires`
// +kubebuilder:printcolumn:name="Uses",type=integer,JSONPath=`.status.useCount`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RolloutPolicyException struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RolloutPolicyExceptionSpec   `json:"spec"`
	Status RolloutPolicyExceptionStatus `json:"status,omitempty"`
}

// RolloutPolicyExceptionSpec is what is waived, for which workloads, why and until when.
type RolloutPolicyExceptionSpec struct {
	// Policies waived: built-in policy names (surge-unavailable, probes-required, ...) or RolloutPolicy names.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MinLength=1
	Policies []string `json:"policies"`
	// Workloads of this namespace the exception covers.
	Workloads ExceptionWorkloads `json:"workloads"`
	// Reason is shown with every use: in the admission warning and in the status.
	// +kubebuilder:validation:MinLength=1
	Reason string `json:"reason"`
	// Expires ends the exception; from then on the policies apply in full again. It may be no further ahead than
	// the webhook's policies.maxExceptionDuration (90 days by default).
	Expires metav1.Time `json:"expires"`
}

// ExceptionWorkloads selects workloads: of the kinds listed (all when empty), named in names and/or matching the
// selector. At least one of names and selector is required, so that an exception never covers a whole namespace
// by omission.
type ExceptionWorkloads struct {
	// +optional
	Kinds []WorkloadKind `json:"kinds,omitempty"`
	// +optional
	Names []string `json:"names,omitempty"`
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// RolloutPolicyExceptionStatus records the exception's uses.
type RolloutPolicyExceptionStatus struct {
	// UseCount counts admitted requests in which the exception waived a violation.
	// +optional
	UseCount int64 `json:"useCount,omitempty"`
	// LastUsed is when it last waived one.
	// +optional
	LastUsed *metav1.Time `json:"lastUsed,omitempty"`
	// Uses are the most recent uses, newest first, at most 20.
	// +optional
	Uses []ExceptionUse `json:"uses,omitempty"`
}

// ExceptionUse is one admitted request in which the exception waived a violation.
type ExceptionUse struct {
	Time metav1.Time `json:"time"`
	// Workload is KIND/NAME.
	Workload string `json:"workload"`
	// Operation is CREATE or UPDATE.
	Operation string   `json:"operation"`
	User      string   `json:"user,omitempty"`
	Policies  []string `json:"policies"`
}

// RolloutPolicyExceptionList is a list of RolloutPolicyExceptions.
//
// +kubebuilder:object:root=true
type RolloutPolicyExceptionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RolloutPolicyException `json:"items"`
}
