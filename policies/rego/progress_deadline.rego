# progress-deadline: a stalled rollout must be noticed in time, and the
# deadline must leave room for minReadySeconds and for the startup probes.
# Parameters: max (900), which a slow start's allowance may exceed.
package rollout_guard.progress_deadline

import data.rollout_guard.lib

# This policy's parameters (from config); none in unit tests.
default deadline := 600

deadline := input.object.spec.progressDeadlineSeconds

default max_deadline := 900

max_deadline := input.parameters.max

default min_ready := 0

min_ready := input.object.spec.minReadySeconds

# startup_allowance mirrors the mutation's: the longest startup probe budget
# (initialDelaySeconds + periodSeconds x failureThreshold) + minReadySeconds +
# 60 s; 0 without startup probes.
budgets := [b |
	some c in lib.containers
	p := c.startupProbe
	b := object.get(p, "initialDelaySeconds", 0) + (object.get(p, "periodSeconds", 10) * object.get(p, "failureThreshold", 3))
]

default startup_allowance := 0

startup_allowance := (max(budgets) + min_ready) + 60 if count(budgets) > 0

deny contains v if {
	lib.kind == "Deployment"
	deadline > max_deadline
	deadline > startup_allowance
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

warn contains v if {
	lib.kind == "Deployment"
	deadline < startup_allowance
	v := {
		"field": "spec.progressDeadlineSeconds",
		"value": deadline,
		"limit": sprintf("at least the startup allowance, %d", [startup_allowance]),
		"msg": sprintf("progressDeadlineSeconds %d is shorter than the %d seconds the startup probes allow a new pod, so Kubernetes may report a slow but healthy rollout as failed (kubectl rollout status exits 1); rollout-guard's watcher waits for the startup probes before it rolls back", [deadline, startup_allowance]),
		"fix": sprintf("remove spec.progressDeadlineSeconds to let rollout-guard set it, or set it to %d or more", [startup_allowance]),
	}
}
