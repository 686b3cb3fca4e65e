// Package mutate owns rollout-guard's defaulting of apps/v1 workloads: default
// readiness, liveness and startup probes, and rollout strategy fields.
//
// It is pure: functions over k8s.io/api types that never call the API server.
// They are idempotent (mutating a mutated object changes nothing) and report
// every change they make, so callers can warn the user and count it. What the
// user wrote is never overwritten; Intent says which fields the user wrote
// when the API server has already filled in its own defaults.
package mutate
