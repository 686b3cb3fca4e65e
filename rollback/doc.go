// Package rollback owns the rollback watcher: a controller that undoes a
// Deployment rollout whose new ReplicaSet stalls unready, the way
// `kubectl rollout undo` would, to the newest revision known to have been
// fully available, at most once per bad pod template.
//
// Reconcile runs in three steps: observe (a snapshot of the Deployment, its
// ReplicaSets and their pods), decide (Decide, a pure function) and act (one
// patch, one Event, one metric). It never imports package webhook.
package rollback
