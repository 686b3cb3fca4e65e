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

slow(deadline) := {"object": {"kind": "Deployment", "spec": {
	"progressDeadlineSeconds": deadline, "minReadySeconds": 5,
	"template": {"spec": {"containers": [{"name": "a", "startupProbe": {"periodSeconds": 10, "failureThreshold": 360}}]}},
}}}

test_slow_start_may_exceed_max if {
	# an hour of startup budget: 3600 + 5 + 60
	count(progress_deadline.deny) == 0 with input as slow(3665)
	count(progress_deadline.warn) == 0 with input as slow(3665)
}

test_beyond_slow_start_denied if {
	some v in progress_deadline.deny with input as slow(4000)
	v.field == "spec.progressDeadlineSeconds"
}

test_deadline_below_startup_allowance_warns if {
	some v in progress_deadline.warn with input as slow(120)
	contains(v.msg, "3665 seconds the startup probes allow")
}

test_startup_probe_defaults if {
	# period 10 x failureThreshold 3 + 0 + 60 = 90
	some v in progress_deadline.warn with input as {"object": {"kind": "Deployment", "spec": {"progressDeadlineSeconds": 60, "template": {"spec": {"containers": [{"name": "a", "startupProbe": {}}]}}}}}
	v.limit == "at least the startup allowance, 90"
}
