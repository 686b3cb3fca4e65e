// Package analysis owns the judgement of a new revision by Prometheus queries: preparing a RolloutAnalysis (its
// templates render, its PromQL parses, its thresholds are numbers), judging one sample of a query against its
// thresholds, and the verdict over time (failing samples in a row, the bake time after the rollout completes).
//
// It is pure: it never queries Prometheus or the API server. The watcher (package rollback) runs the queries and
// keeps a State per revision; the validating webhook refuses at admission what Prepare refuses. Missing data is
// never a failure: a query error, no series, several series, NaN, too little traffic or a relative threshold without
// stable data make a sample inconclusive, which neither fails nor passes a revision.
package analysis
