# surge-unavailable: a rolling update must keep enough pods serving.
# input.rollout holds replicas, and maxSurge and maxUnavailable in pods,
# resolved by rollout-guard exactly as the Deployment controller resolves
# them (surge rounds up, unavailable rounds down); it is present only for
# Deployments with a RollingUpdate strategy.
# Parameters: minAvailable (1), maxUnavailablePercent (25), maxSurgePercent (100).
package rollout_guard.surge_unavailable

# Parameters (from config) are read as default rules: each is evaluated once
# per request and then cached, which OPA does far faster than function calls.
default min_available := 1

min_available := input.parameters.minAvailable

default unavailable_percent := 25

unavailable_percent := input.parameters.maxUnavailablePercent

default surge_percent := 100

surge_percent := input.parameters.maxSurgePercent

replicas := input.rollout.replicas

max_unavailable := input.rollout.maxUnavailable

max_surge := input.rollout.maxSurge

# The values as written, for messages.
default unavailable_value := "25%"

unavailable_value := input.object.spec.strategy.rollingUpdate.maxUnavailable

default surge_value := "25%"

surge_value := input.object.spec.strategy.rollingUpdate.maxSurge

deny contains v if {
	replicas > 1
	replicas - max_unavailable < min_available
	v := {
		"field": "spec.strategy.rollingUpdate.maxUnavailable",
		"value": unavailable_value,
		"limit": sprintf("at least %d of %d replicas available", [min_available, replicas]),
		"msg": sprintf("maxUnavailable %v lets %d of %d replicas go down during a rollout, leaving %d available; at least %d must stay available", [unavailable_value, max_unavailable, replicas, replicas - max_unavailable, min_available]),
		"fix": sprintf("set spec.strategy.rollingUpdate.maxUnavailable to at most %d", [replicas - min_available]),
	}
}

# The limit is max(1, floor(percent × replicas / 100)): one pod at a time is
# always allowed, and small Deployments are guarded by minAvailable. For a
# whole number of pods, exceeding it is the same as exceeding 1 and
# percent × replicas / 100, which needs no division in the common case.
deny contains v if {
	max_unavailable > 1
	max_unavailable * 100 > unavailable_percent * replicas
	replicas - max_unavailable >= min_available
	limit := max([1, floor((unavailable_percent * replicas) / 100)])
	v := {
		"field": "spec.strategy.rollingUpdate.maxUnavailable",
		"value": unavailable_value,
		"limit": sprintf("%d%% of replicas, at least 1 (%d of %d)", [unavailable_percent, limit, replicas]),
		"msg": sprintf("maxUnavailable %v takes %d of %d replicas down at once", [unavailable_value, max_unavailable, replicas]),
		"fix": sprintf("set spec.strategy.rollingUpdate.maxUnavailable to %d or less (or 25%%), or leave it out for rollout-guard's default of 0", [limit]),
	}
}

# The limit is ceil(percent × replicas / 100); a whole number of pods exceeds
# it exactly when one pod fewer still reaches percent × replicas / 100.
deny contains v if {
	(max_surge - 1) * 100 >= surge_percent * replicas
	limit := ceil((surge_percent * replicas) / 100)
	v := {
		"field": "spec.strategy.rollingUpdate.maxSurge",
		"value": surge_value,
		"limit": sprintf("%d%% of replicas (%d pods)", [surge_percent, limit]),
		"msg": sprintf("maxSurge %v adds %d extra pods during a rollout; the limit is %d", [surge_value, max_surge, limit]),
		"fix": sprintf("set spec.strategy.rollingUpdate.maxSurge to %d or less", [limit]),
	}
}
