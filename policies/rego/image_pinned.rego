# image-pinned: a moving tag (latest, or none) cannot be rolled back to: the
# old ReplicaSet would pull whatever the tag points at today.
package rollout_guard.image_pinned

import data.rollout_guard.lib

deny contains v if {
	some i, c in lib.containers
	image := c.image
	not contains(image, "@sha256:")
	# No digest, and: a tag of latest, no tag (no ':' in the last path
	# segment; an earlier one is a registry port), or some other '@'.
	# One regex rather than several tests: this runs for every container.
	regex.match(`^[^@]*(:latest|/[^:/@]*)$|^[^@:/]*$|@`, image)
	v := {
		"field": sprintf("%s.image", [lib.container_path(i)]),
		"value": image,
		"limit": "a fixed tag or a digest",
		"msg": sprintf("container %s uses image %s, whose tag moves: a rollback cannot restore what ran before", [c.name, image]),
		"fix": "pin the image to a version tag (nginx:1.25.3) or a digest (nginx@sha256:...)",
	}
}
