# strategy: Recreate with several replicas takes every pod down at once, and
# StatefulSet OnDelete never rolls out by itself. Both are allowed, with a warning.
package rollout_guard.strategy

import data.rollout_guard.lib

deny contains v if {
	lib.kind == "Deployment"
	input.object.spec.strategy.type == "Recreate"
	lib.replicas > 1
	v := {
		"field": "spec.strategy.type",
		"value": "Recreate",
		"limit": "RollingUpdate when replicas > 1",
		"msg": sprintf("strategy Recreate stops all %d replicas before starting new ones: every update is an outage", [lib.replicas]),
		"fix": "use strategy type RollingUpdate unless the app cannot run two versions at once",
	}
}

deny contains v if {
	lib.kind == "StatefulSet"
	input.object.spec.updateStrategy.type == "OnDelete"
	v := {
		"field": "spec.updateStrategy.type",
		"value": "OnDelete",
		"limit": "RollingUpdate",
		"msg": "updateStrategy OnDelete never replaces pods by itself: updates wait until someone deletes each pod",
		"fix": "use updateStrategy type RollingUpdate",
	}
}
