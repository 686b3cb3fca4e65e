package rollout_guard.lib_test

import data.rollout_guard.lib

test_api_defaults if {
	lib.replicas == 1 with input as {"object": {"kind": "Deployment", "spec": {}}}
	lib.containers == [] with input as {"object": {"kind": "Deployment", "spec": {}}}
	lib.kind == "" with input as {}
}

test_values_as_written if {
	lib.replicas == 0 with input as {"object": {"spec": {"replicas": 0}}}
	lib.kind == "StatefulSet" with input as {"object": {"kind": "StatefulSet"}}
	lib.container_path(2) == "spec.template.spec.containers[2]"
}

test_param_or_default if {
	lib.param({"min": 3}, "min", 2) == 3
	lib.param({}, "min", 2) == 2
}
