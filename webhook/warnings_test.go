package webhook

import (
	"fmt"
	"strings"
	"testing"
)

func TestLimitWarnings(t *testing.T) {
	many := func(n int) []string {
		var ws []string
		for i := range n {
			ws = append(ws, fmt.Sprintf("rollout-guard: note %d", i))
		}
		return ws
	}
	for _, tt := range []struct {
		in   int
		want int
		last string
	}{{0, 0, ""}, {16, 16, "note 15"}, {10000, 17, "and 9984 more warnings like these"}} {
		got := limitWarnings(many(tt.in))
		if len(got) != tt.want || (tt.want > 0 && !strings.Contains(got[len(got)-1], tt.last)) {
			t.Errorf("limitWarnings(%d warnings) = %q", tt.in, got)
		}
	}
	if got := limitWarnings([]string{"denied (2 violations):\n- a\n- b"}); got[0] != "denied (2 violations): - a - b" {
		t.Errorf("a warning with line breaks = %q", got[0])
	}
	if long := limitWarnings([]string{strings.Repeat("x", 5000)}); len(long[0]) > 512 {
		t.Errorf("a warning of 5000 bytes kept %d", len(long[0]))
	}
}
