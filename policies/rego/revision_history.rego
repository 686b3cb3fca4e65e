# revision-history: keep enough old ReplicaSets to roll back to, and not too many.
# Parameters: min (2), max (20).
package rollout_guard.revision_history

import data.rollout_guard.lib

# This policy's parameters (from config); none in unit tests.
default limit := 10

limit := input.object.spec.revisionHistoryLimit

default min_limit := 2

min_limit := input.parameters.min

default max_limit := 20

max_limit := input.parameters.max

deny contains v if {
	lib.workload
	limit < min_limit
	v := {
		"field": "spec.revisionHistoryLimit",
		"value": limit,
		"limit": sprintf("at least %d", [min_limit]),
		"msg": sprintf("revisionHistoryLimit %d keeps too few old revisions to roll back to; at least %d are needed", [limit, min_limit]),
		"fix": sprintf("set spec.revisionHistoryLimit to %d or more, or leave it out for rollout-guard's default", [min_limit]),
	}
}

deny contains v if {
	lib.workload
	limit > max_limit
	v := {
		"field": "spec.revisionHistoryLimit",
		"value": limit,
		"limit": sprintf("at most %d", [max_limit]),
		"msg": sprintf("revisionHistoryLimit %d keeps more old revisions than the limit of %d", [limit, max_limit]),
		"fix": sprintf("set spec.revisionHistoryLimit to %d or less", [max_limit]),
	}
}
