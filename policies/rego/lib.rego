# Helpers shared by the built-in policies.
package rollout_guard.lib

# spec of the object under review.
spec := object.get(input.object, "spec", {})

kind := object.get(input.object, "kind", "")

# replicas as the API server defaults them.
replicas := object.get(spec, "replicas", 1)

# resolve turns an int-or-percent into a pod count the way the Deployment
# controller does: surge rounds up, unavailable rounds down.
resolve(v, _, _) := v if is_number(v)

resolve(v, total, round_up) := n if {
	is_string(v)
	endswith(v, "%")
	pct := to_number(trim_suffix(v, "%"))
	n := round_percent(pct * total / 100, round_up)
}

resolve(v, _, _) := to_number(v) if {
	is_string(v)
	not endswith(v, "%")
	regex.match(`^[0-9]+$`, v)
}

round_percent(x, true) := ceil(x)

round_percent(x, false) := floor(x)

# containers lists every container of the pod template with its field path.
containers contains {"path": sprintf("spec.template.spec.containers[%d]", [i]), "container": c} if {
	some i, c in object.get(spec, ["template", "spec", "containers"], [])
}

param(name, default_value) := object.get(object.get(input, "parameters", {}), name, default_value)
