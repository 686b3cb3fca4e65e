# image-pinned: a moving tag (latest, or none) cannot be rolled back to: the
# old ReplicaSet would pull whatever the tag points at today.
package rollout_guard.image_pinned

import data.rollout_guard.lib

deny contains v if {
	some c in lib.containers
	image := c.container.image
	not pinned(image)
	v := {
		"field": sprintf("%s.image", [c.path]),
		"value": image,
		"limit": "a fixed tag or a digest",
		"msg": sprintf("container %s uses image %s, whose tag moves: a rollback cannot restore what ran before", [c.container.name, image]),
		"fix": "pin the image to a version tag (nginx:1.25.3) or a digest (nginx@sha256:...)",
	}
}

pinned(image) if contains(image, "@sha256:")

pinned(image) if {
	not contains(image, "@")
	tag := tag_of(image)
	tag != ""
	tag != "latest"
}

# tag_of is the part after the last ":" of the last path segment ("" if none):
# a registry port like registry:5000/app is not a tag.
tag_of(image) := tag if {
	parts := split(image, "/")
	last := parts[count(parts) - 1]
	contains(last, ":")
	tag := split(last, ":")[1]
}

tag_of(image) := "" if {
	parts := split(image, "/")
	not contains(parts[count(parts) - 1], ":")
}
