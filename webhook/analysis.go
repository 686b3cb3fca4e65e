package webhook

import (
	"context"
	"fmt"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// validateAnalysis refuses a RolloutAnalysis the watcher could not run, naming every problem by its field: templates
// that do not render, PromQL that does not parse, thresholds that are not numbers or cannot be met, a selector that
// would cover every workload by omission. A query that does not select the revision's pods is admitted with a
// warning: it judges the old pods too.
func (v *Validator) validateAnalysis(_ context.Context, req admission.Request) admission.Response {
	var ra v1alpha1.RolloutAnalysis
	if err := v.decoder.DecodeRaw(req.Object, &ra); err != nil {
		return errored(badRequest("cannot decode the RolloutAnalysis: %v", err))
	}
	if _, errs := ra.ToAnalysis(); len(errs) > 0 {
		problems := make([]string, len(errs))
		for i, e := range errs {
			problems[i] = e.Error()
		}
		return admission.Denied(fmt.Sprintf("rollout-guard: RolloutAnalysis %s:\n- %s", ra.Name, strings.Join(problems, "\n- ")))
	}
	var warnings []string
	for i, q := range ra.Spec.Queries {
		if !strings.Contains(q.Query, ".Pods") {
			warnings = append(warnings, fmt.Sprintf("rollout-guard: spec.queries[%d].query (%s) does not select the new revision's pods with {{.Pods}}, so it also judges the pods of the revision before", i, q.Name))
		}
	}
	return admission.Allowed("").WithWarnings(warnings...)
}
