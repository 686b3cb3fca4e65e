// Package e2e tests rollout-guard end to end against a real local control
// plane (package test/cluster), driving it with the real kubectl as a user
// would. TestMain starts one cluster and one rollout-guard (webhook and
// watcher) for the whole package; each test works in its own namespace.
// When the cluster cannot start, every test fails: nothing is skipped.
package e2e
