package rollout_guard.image_pinned_test

import data.rollout_guard.image_pinned

deployment(image) := {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}

test_latest_flagged if {
	some v in image_pinned.deny with input as {"object": deployment("nginx:latest")}
	v.field == "spec.template.spec.containers[0].image"
}

test_no_tag_flagged if {
	count(image_pinned.deny) == 1 with input as {"object": deployment("registry:5000/team/app")}
}

test_version_tag_fine if {
	count(image_pinned.deny) == 0 with input as {"object": deployment("registry:5000/team/app:1.2.3")}
}

test_digest_fine if {
	count(image_pinned.deny) == 0 with input as {"object": deployment("nginx@sha256:0123abcd")}
}
