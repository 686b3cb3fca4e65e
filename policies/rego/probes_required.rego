# probes-required: every container has a readinessProbe (checked after
# rollout-guard's mutation, which adds one wherever it can).
package rollout_guard.probes_required

import data.rollout_guard.lib

deny contains v if {
	lib.workload
	some i, c in lib.containers
	not c.readinessProbe
	v := {
		"field": sprintf("%s.readinessProbe", [lib.container_path(i)]),
		"value": null,
		"limit": "a readinessProbe on every container",
		"msg": sprintf("container %s has no readinessProbe, so a broken pod would count as ready", [c.name]),
		"fix": "add a readinessProbe, or a containerPort so rollout-guard can add one",
	}
}
