package webhook

import (
	"fmt"
	"strings"

	"github.com/rollout-guard/rollout-guard/policies"
)

// maxWarnings bounds the warnings of one answer: one object can carry thousands of containers, each with a note,
// and the API server relays every warning to the client (it keeps only the first few kilobytes anyway).
const maxWarnings = 16

// limitWarnings keeps the first warnings, each capped and on one line (the API server drops a warning that holds a
// line break: it travels as an HTTP header), and counts the rest in a last one.
func limitWarnings(ws []string) []string {
	out := make([]string, 0, min(len(ws), maxWarnings+1))
	for _, w := range ws[:min(len(ws), maxWarnings)] {
		out = append(out, strings.Join(strings.Fields(policies.Truncate(w, 512)), " "))
	}
	if more := len(ws) - maxWarnings; more > 0 {
		out = append(out, fmt.Sprintf("rollout-guard: ... and %d more warnings like these", more))
	}
	return out
}
