// Package policies owns rollout-guard's Rego policies: the built-in ones
// (embedded .rego files, each with a _test.rego beside it and sample
// manifests under testdata) and the evaluator that runs them, together with
// platform-authored modules, in-process with OPA.
//
// Policies are compiled and prepared once per policy set. Compilation uses
// strict mode and capabilities without network or runtime built-ins, so a
// module calling http.send is rejected when it is loaded, never at request
// time. Evaluation has a deadline, reports built-in errors as errors, and
// recovers from panics.
package policies
