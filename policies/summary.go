package policies

import (
	"fmt"
	"strings"
)

// Summary limits: a Deployment with 10,000 containers once produced a 3.8 MB denial, which the API server logged
// and returned again and again. The person reading it needs a few examples and a count.
const (
	// PerPolicy is how many violations of one policy are described in full.
	PerPolicy = 3
	// MaxMessageBytes caps a whole admission message.
	MaxMessageBytes = 4096
)

// Summarize describes violations for a person: at most PerPolicy of each policy in full, in their order, then one
// line per policy with the count of the rest, those the evaluator did not read (Omitted) included.
func Summarize(vs []Violation) []string {
	seen := map[string]int{}
	var out []string
	var order []string
	omitted := map[string]int{}
	for _, v := range vs {
		if seen[v.Policy] == 0 {
			order = append(order, v.Policy)
		}
		seen[v.Policy]++
		omitted[v.Policy] += v.Omitted
		if seen[v.Policy] <= PerPolicy {
			out = append(out, Describe(v))
		}
	}
	for _, p := range order {
		if more := max(seen[p]-PerPolicy, 0) + omitted[p]; more > 0 {
			out = append(out, fmt.Sprintf("[%s] ... and %d more like these", p, more))
		}
	}
	return out
}

// Truncate cuts s to at most limit bytes, on a rune boundary, saying that it did.
func Truncate(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	const note = "\n... (message cut at %d bytes)"
	cut := limit - len(fmt.Sprintf(note, limit))
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return strings.TrimRight(s[:max(cut, 0)], "\n") + fmt.Sprintf(note, limit)
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// Count is how many violations vs stand for, those the evaluator did not read included.
func Count(vs []Violation) int {
	n := len(vs)
	for _, v := range vs {
		n += v.Omitted
	}
	return n
}
