# probes-required: every container has a readinessProbe (checked after
# rollout-guard's mutation, which adds one wherever a container declares a
# port). A container without a port cannot be given one, and ordinary apps
# (queue workers, load generators, batch consumers) declare none: for those
# the policy warns and names the probe to add, so they install unchanged.
package rollout_guard.probes_required

import data.rollout_guard.lib

deny contains v if {
	lib.workload
	some i, c in lib.containers
	not c.readinessProbe
	count(object.get(c, "ports", [])) > 0
	v := {
		"field": sprintf("%s.readinessProbe", [lib.container_path(i)]),
		"value": null,
		"limit": "a readinessProbe on every container",
		"msg": sprintf("container %s has no readinessProbe, so a broken pod would count as ready", [c.name]),
		"fix": "add a readinessProbe, or let rollout-guard add one on the container's first port (remove rollout-guard.io/mutate: \"false\")",
	}
}

warn contains v if {
	lib.workload
	some i, c in lib.containers
	not c.readinessProbe
	count(object.get(c, "ports", [])) == 0
	v := {
		"field": sprintf("%s.readinessProbe", [lib.container_path(i)]),
		"value": null,
		"limit": "a readinessProbe on every container",
		"msg": sprintf("container %s has no readinessProbe and declares no port, so rollout-guard could not add one and a broken pod counts as ready as soon as it starts", [c.name]),
		"fix": "add an exec readinessProbe that checks the process is doing its work (e.g. a heartbeat file it touches), or a containerPort if it serves one",
	}
}
