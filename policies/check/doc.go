// Package check runs rollout-guard's policies on manifests offline, as
// `rollout-guard check` does: each workload gets the API server's defaults
// and rollout-guard's own mutation first, so that the verdicts match what the
// cluster would say at kubectl apply. It reads what people feed it (files,
// nested directories, Lists), and runs suites: RolloutPolicy manifests with
// workload cases and the verdict expected of each policy
// (`rollout-guard test --suite`).
package check
