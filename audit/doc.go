// Package audit runs the policies in force on the workloads already running in a cluster, as they run: Run lists
// the RolloutPolicies, RolloutPolicyExceptions, Namespaces and every Deployment, StatefulSet and DaemonSet (page by
// page), and judges each workload with package check in live mode, the same code `rollout-guard check` runs
// offline. Build turns an audit's findings into one wgpolicyk8s.io PolicyReport per namespace (pure, bounded in
// size, keeping each result's first-seen time); the Auditor is the watcher's leader-elected runnable that audits
// every interval and whenever a RolloutPolicy or RolloutPolicyException changes, writes the reports in place and
// keeps metrics per policy and namespace. `rollout-guard audit` calls Run from a laptop or CI, so the CLI and the
// reports agree by construction.
package audit
