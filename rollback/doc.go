// Package rollback owns the rollback watcher: a controller that undoes a
// Deployment rollout whose new ReplicaSet stalls unready, the way
// `kubectl rollout undo` would, to the newest revision known to have been
// fully available, at most once per bad pod template.
//
// Reconcile runs in three steps: observe (a snapshot of the Deployment, its
// ReplicaSets and their pods), decide (Decide, a pure function) and act (one
// patch, one Event, one metric; an undo writes its intent on the revision it
// leaves first, so that a crash between the two cannot repeat it). It never
// imports package webhook.
package rollback
