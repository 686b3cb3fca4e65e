package rollout_guard.probes_required_test

import data.rollout_guard.probes_required

pod_spec(containers) := {"kind": "Deployment", "spec": {"template": {"spec": {"containers": containers}}}}

test_missing_probe_with_port_denied if {
	some v in probes_required.deny with input as {"object": pod_spec([{"name": "a", "readinessProbe": {}}, {"name": "b", "ports": [{"containerPort": 80}]}])}
	v.field == "spec.template.spec.containers[1].readinessProbe"
	contains(v.msg, "container b")
}

test_missing_probe_without_port_warns if {
	input_worker := {"object": pod_spec([{"name": "worker"}])}
	count(probes_required.deny) == 0 with input as input_worker
	some v in probes_required.warn with input as input_worker
	v.field == "spec.template.spec.containers[0].readinessProbe"
	contains(v.fix, "exec readinessProbe")
}

test_all_probed_allowed if {
	probed := {"object": pod_spec([{"name": "a", "readinessProbe": {"tcpSocket": {"port": 80}}}, {"name": "w", "readinessProbe": {"exec": {"command": ["true"]}}}])}
	count(probes_required.deny) == 0 with input as probed
	count(probes_required.warn) == 0 with input as probed
}
