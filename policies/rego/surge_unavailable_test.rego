package rollout_guard.surge_unavailable_test

import data.rollout_guard.surge_unavailable

deployment(replicas, surge, unavailable) := {
	"kind": "Deployment",
	"spec": {"replicas": replicas, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}},
}

test_seed_fifty_fifty_at_ten_replicas_denied if {
	some v in surge_unavailable.deny with input as {"object": deployment(10, "50%", "50%")}
	v.field == "spec.strategy.rollingUpdate.maxUnavailable"
	v.value == "50%"
}

test_safe_defaults_allowed if {
	count(surge_unavailable.deny) == 0 with input as {"object": deployment(10, "25%", 0)}
}

test_api_defaults_allowed if {
	count(surge_unavailable.deny) == 0 with input as {"object": deployment(4, "25%", "25%")}
}

test_unavailable_rounds_down if {
	# 30% of 3 replicas is 0.9, which the controller rounds down to 0.
	count(surge_unavailable.deny) == 0 with input as {"object": deployment(3, 1, "30%")}
}

test_all_replicas_down_denied if {
	some v in surge_unavailable.deny with input as {"object": deployment(2, 0, 2)}
	contains(v.msg, "leaving 0 available")
}

test_single_replica_not_judged_on_availability if {
	count(surge_unavailable.deny) == 0 with input as {"object": deployment(1, 1, 1)}
}

test_min_available_parameter if {
	some v in surge_unavailable.deny with input as {"object": deployment(4, 1, 1), "parameters": {"minAvailable": 4}}
	contains(v.msg, "at least 4 must stay available")
}

test_surge_limit if {
	some v in surge_unavailable.deny with input as {"object": deployment(4, "300%", 0)}
	v.field == "spec.strategy.rollingUpdate.maxSurge"
}

test_recreate_ignored if {
	count(surge_unavailable.deny) == 0 with input as {"object": {"kind": "Deployment", "spec": {"replicas": 5, "strategy": {"type": "Recreate"}}}}
}

test_one_at_a_time_allowed_for_small_deployments if {
	count(surge_unavailable.deny) == 0 with input as {"object": deployment(2, "25%", 1)}
}

test_limit_is_a_percentage_of_replicas if {
	some v in surge_unavailable.deny with input as {"object": deployment(20, 0, 6)}
	v.limit == "25% of replicas, at least 1 (5 of 20)"
}
