package rollout_guard.surge_unavailable_test

import data.rollout_guard.surge_unavailable

# review is the input the evaluator gives a Deployment: the object as written
# and input.rollout with maxSurge and maxUnavailable resolved to pods (the
# resolution itself is tested in Go, in TestRolloutFacts).
review(replicas, surge, unavailable, surge_pods, unavailable_pods) := {
	"object": {
		"kind": "Deployment",
		"spec": {"replicas": replicas, "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}},
	},
	"rollout": {"replicas": replicas, "maxSurge": surge_pods, "maxUnavailable": unavailable_pods},
}

test_seed_fifty_fifty_at_ten_replicas_denied if {
	some v in surge_unavailable.deny with input as review(10, "50%", "50%", 5, 5)
	v.field == "spec.strategy.rollingUpdate.maxUnavailable"
	v.value == "50%"
}

test_safe_defaults_allowed if {
	count(surge_unavailable.deny) == 0 with input as review(10, "25%", 0, 3, 0)
}

test_api_defaults_allowed if {
	count(surge_unavailable.deny) == 0 with input as review(4, "25%", "25%", 1, 1)
}

test_all_replicas_down_denied if {
	some v in surge_unavailable.deny with input as review(2, 0, 2, 0, 2)
	contains(v.msg, "leaving 0 available")
}

test_single_replica_not_judged_on_availability if {
	count(surge_unavailable.deny) == 0 with input as review(1, 1, 1, 1, 1)
}

test_min_available_parameter if {
	some v in surge_unavailable.deny with input as object.union(review(4, 1, 1, 1, 1), {"parameters": {"minAvailable": 4}})
	contains(v.msg, "at least 4 must stay available")
}

test_surge_limit if {
	some v in surge_unavailable.deny with input as review(4, "300%", 0, 12, 0)
	v.field == "spec.strategy.rollingUpdate.maxSurge"
	v.limit == "100% of replicas (4 pods)"
}

test_surge_at_the_rounded_up_limit_allowed if {
	# 100% of 3 is 3; with maxSurgePercent 50 the limit is ceil(1.5) = 2 pods.
	count(surge_unavailable.deny) == 0 with input as object.union(review(3, 2, 0, 2, 0), {"parameters": {"maxSurgePercent": 50}})
	some v in surge_unavailable.deny with input as object.union(review(3, 3, 0, 3, 0), {"parameters": {"maxSurgePercent": 50}})
	v.limit == "50% of replicas (2 pods)"
}

test_not_rolling_ignored if {
	# The evaluator gives no rollout facts for Recreate.
	count(surge_unavailable.deny) == 0 with input as {"object": {"kind": "Deployment", "spec": {"replicas": 5, "strategy": {"type": "Recreate"}}}}
}

test_one_at_a_time_allowed_for_small_deployments if {
	count(surge_unavailable.deny) == 0 with input as review(2, "25%", 1, 1, 1)
}

test_limit_is_a_percentage_of_replicas if {
	some v in surge_unavailable.deny with input as review(20, 0, 6, 0, 6)
	v.limit == "25% of replicas, at least 1 (5 of 20)"
	count(surge_unavailable.deny) == 0 with input as review(20, 0, 5, 0, 5)
}
