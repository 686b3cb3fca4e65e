# known-bad-revision: an update must not put back a pod template that
# rollout-guard rolled back recently. The watcher undoes a bad revision once;
# a GitOps sync or a script that applies the same template again would start
# the same bad rollout, and this time nothing undoes it.
# The webhook sets input.rolledBack when the update's template is a revision
# the watcher rolled back: {revision, images, at, ageSeconds, reason}.
# Parameters: window (24h), how long after a rollback the revision counts as
# known-bad. Annotation rollout-guard.io/retry-rolled-back: "<why>" on the
# workload retries it deliberately.
package rollout_guard.known_bad_revision

import data.rollout_guard.lib

default window_ns := 86400000000000

window_ns := time.parse_duration_ns(input.parameters.window)

retry_annotation := "rollout-guard.io/retry-rolled-back"

retried if trim_space(input.object.metadata.annotations[retry_annotation]) != ""

deny contains v if {
	lib.workload
	rb := input.rolledBack
	rb.ageSeconds * 1000000000 < window_ns
	not retried
	v := {
		"field": "spec.template",
		"value": sprintf("revision %s (%s)", [rb.revision, rb.images]),
		"limit": sprintf("not a revision rolled back within the last %s", [object.get(object.get(input, "parameters", {}), "window", "24h")]),
		"msg": sprintf("this pod template is revision %s (%s), which rollout-guard rolled back at %s%s; applied again it starts the same bad rollout, and rollout-guard rolls a revision back only once", [rb.revision, rb.images, rb.at, because(rb)]),
		"fix": sprintf("fix the template (the image, its configuration), or to retry this revision deliberately annotate the %s %s: \"<why>\"", [lib.kind, retry_annotation]),
	}
}

because(rb) := sprintf(" because %s", [rb.reason]) if rb.reason != ""

else := " (the workload's Events say why)"
