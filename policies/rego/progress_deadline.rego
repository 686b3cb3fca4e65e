# progress-deadline: a stalled rollout must be noticed in time, and the
# deadline must leave room for minReadySeconds.
# Parameters: max (900).
package rollout_guard.progress_deadline

import data.rollout_guard.lib

# This policy's parameters (from config); none in unit tests.
default deadline := 600

deadline := input.object.spec.progressDeadlineSeconds

default max_deadline := 900

max_deadline := input.parameters.max

default min_ready := 0

min_ready := input.object.spec.minReadySeconds

deny contains v if {
	lib.kind == "Deployment"
	deadline > max_deadline
	v := {
		"field": "spec.progressDeadlineSeconds",
		"value": deadline,
		"limit": sprintf("at most %d", [max_deadline]),
		"msg": sprintf("progressDeadlineSeconds %d means a stalled rollout goes unnoticed for over %d minutes; the limit is %d seconds", [deadline, deadline / 60, max_deadline]),
		"fix": sprintf("set spec.progressDeadlineSeconds to %d or less", [max_deadline]),
	}
}

deny contains v if {
	lib.kind == "Deployment"
	deadline <= min_ready
	v := {
		"field": "spec.progressDeadlineSeconds",
		"value": deadline,
		"limit": sprintf("more than minReadySeconds (%d)", [min_ready]),
		"msg": sprintf("progressDeadlineSeconds %d is not above minReadySeconds %d, so every rollout would count as stalled", [deadline, min_ready]),
		"fix": "raise spec.progressDeadlineSeconds above spec.minReadySeconds",
	}
}
