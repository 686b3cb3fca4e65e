package rollout_guard.known_bad_revision_test

import data.rollout_guard.known_bad_revision

bad(age, annotations) := {
	"operation": "UPDATE",
	"object": {"kind": "Deployment", "metadata": {"name": "web", "annotations": annotations}, "spec": {}},
	"rolledBack": {"revision": "3", "images": "nginx:1.161", "at": "2026-11-23T10:00:00Z", "ageSeconds": age, "reason": "pod web-x: container nginx (nginx:1.161) waiting in ImagePullBackOff"},
}

test_recent_rollback_denied if {
	some v in known_bad_revision.deny with input as bad(600, {})
	contains(v.msg, "revision 3 (nginx:1.161), which rollout-guard rolled back at 2026-11-23T10:00:00Z because pod web-x")
	contains(v.fix, "rollout-guard.io/retry-rolled-back")
}

test_outside_window_allowed if {
	count(known_bad_revision.deny) == 0 with input as bad(90000, {})
}

test_window_parameter if {
	count(known_bad_revision.deny) == 0 with input as object.union(bad(600, {}), {"parameters": {"window": "5m"}})
	count(known_bad_revision.deny) == 1 with input as object.union(bad(600, {}), {"parameters": {"window": "168h"}})
}

test_retry_annotation_allows if {
	count(known_bad_revision.deny) == 0 with input as bad(600, {"rollout-guard.io/retry-rolled-back": "the registry was down"})
	count(known_bad_revision.deny) == 1 with input as bad(600, {"rollout-guard.io/retry-rolled-back": " "})
}

test_no_rollback_allowed if {
	count(known_bad_revision.deny) == 0 with input as {"object": {"kind": "Deployment", "spec": {}}}
}

test_unknown_reason if {
	some v in known_bad_revision.deny with input as json.patch(bad(60, {}), [{"op": "replace", "path": "/rolledBack/reason", "value": ""}])
	contains(v.msg, "(the workload's Events say why)")
}
