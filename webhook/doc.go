// Package webhook adapts rollout-guard's pure packages to admission
// webhooks on controller-runtime: the mutating handler applies package
// mutate; the validating handler evaluates package policies on workloads and
// on their scale subresource, and compiles each RolloutPolicy with the set in
// force. It owns request decoding, admission answers and warnings, admission
// metrics, the webhook server with hot-reloaded certificates (and their
// rotation, when self-managed), dev mode's webhook registration, the input
// that tells known-bad-revision a template was rolled back, and the selftest
// `helm test` runs. It never imports package rollback: the few annotations
// the watcher writes that it reads are named again here.
package webhook
