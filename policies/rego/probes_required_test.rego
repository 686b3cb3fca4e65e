package rollout_guard.probes_required_test

import data.rollout_guard.probes_required

pod_spec(containers) := {"kind": "Deployment", "spec": {"template": {"spec": {"containers": containers}}}}

test_missing_probe_denied if {
	some v in probes_required.deny with input as {"object": pod_spec([{"name": "a", "readinessProbe": {}}, {"name": "b"}])}
	v.field == "spec.template.spec.containers[1].readinessProbe"
	contains(v.msg, "container b")
}

test_all_probed_allowed if {
	count(probes_required.deny) == 0 with input as {"object": pod_spec([{"name": "a", "readinessProbe": {"tcpSocket": {"port": 80}}}])}
}
