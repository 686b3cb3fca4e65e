package rollout_guard.progress_deadline_test

import data.rollout_guard.progress_deadline

test_default_allowed if {
	count(progress_deadline.deny) == 0 with input as {"object": {"kind": "Deployment", "spec": {}}}
}

test_too_long_denied if {
	some v in progress_deadline.deny with input as {"object": {"kind": "Deployment", "spec": {"progressDeadlineSeconds": 3600}}}
	v.field == "spec.progressDeadlineSeconds"
}

test_not_above_min_ready_denied if {
	some v in progress_deadline.deny with input as {"object": {"kind": "Deployment", "spec": {"progressDeadlineSeconds": 30, "minReadySeconds": 30}}}
	contains(v.msg, "not above minReadySeconds")
}
