package rollout_guard.revision_history_test

import data.rollout_guard.revision_history

test_zero_denied if {
	some v in revision_history.deny with input as {"object": {"kind": "Deployment", "spec": {"revisionHistoryLimit": 0}}}
	v.field == "spec.revisionHistoryLimit"
	v.value == 0
}

test_api_default_allowed if {
	count(revision_history.deny) == 0 with input as {"object": {"kind": "Deployment", "spec": {}}}
}

test_too_many_denied if {
	some v in revision_history.deny with input as {"object": {"kind": "StatefulSet", "spec": {"revisionHistoryLimit": 100}}}
	contains(v.msg, "limit of 20")
}

test_parameters if {
	count(revision_history.deny) == 0 with input as {"object": {"kind": "Deployment", "spec": {"revisionHistoryLimit": 1}}, "parameters": {"min": 1}}
}
