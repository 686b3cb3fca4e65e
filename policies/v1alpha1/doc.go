// Package v1alpha1 holds rollout-guard's API (rollout-guard.io/v1alpha1): RolloutPolicy, a platform-authored Rego
// policy, cluster-scoped, compiled and enforced by the validating webhook without a restart; RolloutPolicyException,
// a namespaced waiver granted under RBAC; and RolloutAnalysis, Prometheus queries that judge every new revision,
// run by the rollback watcher. Each converts into what its pure package runs (policies, analysis).
//
// +kubebuilder:object:generate=true
// +groupName=rollout-guard.io
package v1alpha1
