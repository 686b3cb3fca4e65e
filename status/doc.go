// Package status owns `rollout-guard status KIND/NAME` (also `kubectl rollout-guard status`): one workload's story in
// one place, read from the cluster. Its revisions with their images and the watcher's marks (known-good, rolled back),
// the watcher's last action and the rollout-guard Events still kept, the RolloutPolicyExceptions in force for it, and
// the policies' verdict on its template now, asked of the cluster's own webhooks by a server-side dry run.
package status
