# Helpers shared by the built-in policies.
package rollout_guard.lib

# Lookups use default rules rather than object.get: plain references are
# what OPA evaluates fastest, and these run on every admission request.

default kind := ""

kind := input.object.kind

# replicas as the API server defaults them.
default replicas := 1

replicas := input.object.spec.replicas

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

# containers of the pod template, by index.
default containers := []

containers := input.object.spec.template.spec.containers

# container_path is the field path of container i, for messages.
container_path(i) := sprintf("spec.template.spec.containers[%d]", [i])

# param is a policy parameter, or default_value when it is not set. Policies
# pass input.parameters (their own, which the evaluator provides).
param(params, name, default_value) := value if {
	value := params[name]
} else := default_value
