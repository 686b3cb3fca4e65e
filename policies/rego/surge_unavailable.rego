# surge-unavailable: a rolling update must keep enough pods serving.
# maxUnavailable and maxSurge are resolved against replicas the way the
# Deployment controller does it (surge rounds up, unavailable rounds down).
# Parameters: minAvailable (1), maxUnavailablePercent (25), maxSurgePercent (100).
package rollout_guard.surge_unavailable

import data.rollout_guard.lib

# This policy's parameters (from config); none in unit tests.
default params := {}

params := input.parameters

default strategy_type := "RollingUpdate"

strategy_type := input.object.spec.strategy.type

rolling if {
	lib.kind == "Deployment"
	strategy_type == "RollingUpdate"
}

default unavailable_value := "25%"

unavailable_value := input.object.spec.strategy.rollingUpdate.maxUnavailable

default surge_value := "25%"

surge_value := input.object.spec.strategy.rollingUpdate.maxSurge

max_unavailable := lib.resolve(unavailable_value, lib.replicas, false)

max_surge := lib.resolve(surge_value, lib.replicas, true)

min_available := lib.param(params, "minAvailable", 1)

# One pod at a time is always allowed: small Deployments are guarded by minAvailable.
unavailable_limit := max([1, floor((lib.param(params, "maxUnavailablePercent", 25) * lib.replicas) / 100)])

surge_limit := ceil((lib.param(params, "maxSurgePercent", 100) * lib.replicas) / 100)

deny contains v if {
	rolling
	lib.replicas > 1
	lib.replicas - max_unavailable < min_available
	v := {
		"field": "spec.strategy.rollingUpdate.maxUnavailable",
		"value": unavailable_value,
		"limit": sprintf("at least %d of %d replicas available", [min_available, lib.replicas]),
		"msg": sprintf("maxUnavailable %v lets %d of %d replicas go down during a rollout, leaving %d available; at least %d must stay available", [unavailable_value, max_unavailable, lib.replicas, lib.replicas - max_unavailable, min_available]),
		"fix": sprintf("set spec.strategy.rollingUpdate.maxUnavailable to at most %d", [lib.replicas - min_available]),
	}
}

deny contains v if {
	rolling
	lib.replicas > 1
	max_unavailable > unavailable_limit
	lib.replicas - max_unavailable >= min_available
	v := {
		"field": "spec.strategy.rollingUpdate.maxUnavailable",
		"value": unavailable_value,
		"limit": sprintf("%d%% of replicas, at least 1 (%d of %d)", [lib.param(params, "maxUnavailablePercent", 25), unavailable_limit, lib.replicas]),
		"msg": sprintf("maxUnavailable %v takes %d of %d replicas down at once", [unavailable_value, max_unavailable, lib.replicas]),
		"fix": sprintf("set spec.strategy.rollingUpdate.maxUnavailable to %d or less (or 25%%), or leave it out for rollout-guard's default of 0", [unavailable_limit]),
	}
}

deny contains v if {
	rolling
	max_surge > surge_limit
	v := {
		"field": "spec.strategy.rollingUpdate.maxSurge",
		"value": surge_value,
		"limit": sprintf("%d%% of replicas (%d pods)", [lib.param(params, "maxSurgePercent", 100), surge_limit]),
		"msg": sprintf("maxSurge %v adds %d extra pods during a rollout; the limit is %d", [surge_value, max_surge, surge_limit]),
		"fix": sprintf("set spec.strategy.rollingUpdate.maxSurge to %d or less", [surge_limit]),
	}
}
