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

test_each_shape_of_image_reference if {
	every image in ["nginx", "team/app", "nginx:latest", "registry:5000/team/app", "registry:5000/team/app:latest", "nginx@sha512:0123"] {
		count(image_pinned.deny) == 1 with input as {"object": deployment(image)}
	}
	every image in ["nginx:1.9.1", "team/app:v2", "registry:5000/app:1.0", "nginx:latest@sha256:0123", "registry:5000/team/app@sha256:0123"] {
		count(image_pinned.deny) == 0 with input as {"object": deployment(image)}
	}
}
