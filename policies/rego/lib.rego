# Helpers shared by the built-in policies.
package rollout_guard.lib

# Lookups use default rules rather than object.get: plain references are
# what OPA evaluates fastest, and these run on every admission request.

default kind := ""

kind := input.object.kind

# workload: a kind whose rollouts rollout-guard guards.
workload if kind in {"Deployment", "StatefulSet", "DaemonSet"}

# replicas as the API server defaults them.
default replicas := 1

replicas := input.object.spec.replicas

# containers of the pod template, by index.
default containers := []

containers := input.object.spec.template.spec.containers

# container_path is the field path of container i, for messages.
container_path(i) := sprintf("spec.template.spec.containers[%d]", [i])

# param is a policy parameter, or default_value when it is not set, for
# platform-authored policies (built-ins read theirs as default rules, which
# is faster). Pass input.parameters.
param(params, name, default_value) := value if {
	value := params[name]
} else := default_value
