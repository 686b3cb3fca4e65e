// Package v1alpha1 holds the RolloutPolicy API (rollout-guard.io/v1alpha1):
// a platform-authored Rego policy, cluster-scoped, compiled and enforced by
// the validating webhook without a restart.
//
// +kubebuilder:object:generate=true
// +groupName=rollout-guard.io
package v1alpha1
