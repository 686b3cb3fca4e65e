package rollout_guard.strategy_test

import data.rollout_guard.strategy

test_recreate_many_replicas if {
	some v in strategy.deny with input as {"object": {"kind": "Deployment", "spec": {"replicas": 3, "strategy": {"type": "Recreate"}}}}
	v.field == "spec.strategy.type"
}

test_recreate_one_replica_fine if {
	count(strategy.deny) == 0 with input as {"object": {"kind": "Deployment", "spec": {"replicas": 1, "strategy": {"type": "Recreate"}}}}
}

test_statefulset_on_delete if {
	some v in strategy.deny with input as {"object": {"kind": "StatefulSet", "spec": {"updateStrategy": {"type": "OnDelete"}}}}
	v.value == "OnDelete"
}
