# revision-history: keep enough old ReplicaSets to roll back to, and not too many.
# Parameters: min (2), max (20).
package rollout_guard.revision_history

import data.rollout_guard.lib

# This policy's parameters (from config); none in unit tests.
default params := {}

params := input.parameters

default limit := 10

limit := input.object.spec.revisionHistoryLimit

min_limit := lib.param(params, "min", 2)

max_limit := lib.param(params, "max", 20)

deny contains v if {
	lib.kind in {"Deployment", "StatefulSet", "DaemonSet"}
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
	lib.kind in {"Deployment", "StatefulSet", "DaemonSet"}
	limit > max_limit
	v := {
		"field": "spec.revisionHistoryLimit",
		"value": limit,
		"limit": sprintf("at most %d", [max_limit]),
		"msg": sprintf("revisionHistoryLimit %d keeps more old revisions than the limit of %d", [limit, max_limit]),
		"fix": sprintf("set spec.revisionHistoryLimit to %d or less", [max_limit]),
	}
}
