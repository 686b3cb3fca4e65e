package webhook

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/rollout-guard/rollout-guard/policies"
)

// What the watcher writes (package rollback, which the webhook does not import): the mark on a revision it rolled
// back from, the intent it records just before the undo, and the workload's record of its last action.
const (
	annotationRolledBack     = "rollout-guard.io/rolled-back"
	annotationRollbackIntent = "rollout-guard.io/rolling-back-at-generation"
	annotationLastAction     = "rollout-guard.io/last-action"
)

// rolledBackInput is input.rolledBack for the known-bad-revision policy when the update puts back r, a revision the
// watcher rolled back: its number, images, when and why; nil otherwise. old is the workload before the update,
// whose last-action record says why, while it is about that revision.
func rolledBackInput(r *earlierRevision, old map[string]any, now time.Time) map[string]any {
	if r == nil {
		return nil
	}
	at := r.Annotations[annotationRolledBack]
	if at == "" && !intentPassed(r.Annotations[annotationRollbackIntent], old) {
		return nil
	}
	// the fields of rollback.LastAction this reads
	var la struct{ Action, FromRevision, FromHash, Message, Stall, Time string }
	_ = json.Unmarshal([]byte(stringMap(old, "metadata", "annotations")[annotationLastAction]), &la)
	reason := ""
	if la.Action == "Rollback" && (la.FromHash == r.Hash || la.FromRevision == r.Revision) {
		reason = la.Stall
		if reason == "" { // recorded by a watcher before the stall had a field of its own
			reason = la.Message
		}
		if at == "" {
			at = la.Time
		}
	}
	age := int64(0)
	if t, err := time.Parse(time.RFC3339, at); err == nil {
		age = max(0, int64(now.Sub(t).Seconds()))
	} else {
		// rolled back, but when is not recorded: it counts as just now
		at = "an unrecorded time"
	}
	return map[string]any{"revision": r.Revision, "images": r.Images, "at": at, "ageSeconds": age, "reason": policies.Truncate(reason, 512)}
}

// intentPassed: the watcher recorded the intent to roll back at a generation the workload has moved past, so the
// undo happened (see rollback.AnnotationRollbackIntent).
func intentPassed(intent string, old map[string]any) bool {
	at, err := strconv.ParseInt(intent, 10, 64)
	if err != nil {
		return false
	}
	meta, _ := old["metadata"].(map[string]any)
	generation, _ := meta["generation"].(float64)
	return at < int64(generation)
}
