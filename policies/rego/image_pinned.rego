# image-pinned: a moving tag (latest, or none) cannot be rolled back to: the
# old ReplicaSet would pull whatever the tag points at today.
package rollout_guard.image_pinned

import data.rollout_guard.lib

deny contains v if {
	some i, c in lib.containers
	image := c.image
	not pinned(image)
	v := {
		"field": sprintf("%s.image", [lib.container_path(i)]),
		"value": image,
		"limit": "a fixed tag or a digest",
		"msg": sprintf("container %s uses image %s, whose tag moves: a rollback cannot restore what ran before", [c.name, image]),
		"fix": "pin the image to a version tag (nginx:1.25.3) or a digest (nginx@sha256:...)",
	}
}

pinned(image) if contains(image, "@sha256:")

# A tag follows the last ":" when no "/" comes after it (registry:5000/app has
# no tag); "latest" moves like no tag at all.
pinned(image) if {
	not contains(image, "@")
	regex.match(`:[^/:]+$`, image)
	not endswith(image, ":latest")
}
