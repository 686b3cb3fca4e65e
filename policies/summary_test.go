package policies

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSummarize(t *testing.T) {
	many := func(policy string, n int) []Violation {
		var vs []Violation
		for i := range n {
			vs = append(vs, Violation{Policy: policy, Enforcement: Deny, Field: fmt.Sprintf("c[%d]", i), Message: "m"})
		}
		return vs
	}
	tests := []struct {
		name string
		in   []Violation
		want []string
	}{
		{"none", nil, nil},
		{"few are all described", many("p", 3), []string{"[p] c[0]: m", "[p] c[1]: m", "[p] c[2]: m"}},
		{"the rest are counted", many("p", 10000), []string{"[p] c[0]: m", "[p] c[1]: m", "[p] c[2]: m", "[p] ... and 9997 more like these"}},
		{"per policy, in order", append(many("a", 4), many("b", 1)...),
			[]string{"[a] c[0]: m", "[a] c[1]: m", "[a] c[2]: m", "[b] c[0]: m", "[a] ... and 1 more like these"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Summarize(tt.in); strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("Summarize = %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		max  int
	}{
		{"short stays", "abc", 100},
		{"long is cut", strings.Repeat("x", 10000), 200},
		{"on a rune boundary", strings.Repeat("é", 5000), 201},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := Truncate(tt.in, tt.max)
			if len(got) > tt.max || !utf8.ValidString(got) {
				t.Fatalf("len %d > %d or invalid UTF-8", len(got), tt.max)
			}
			if cut := len(tt.in) > tt.max; cut != strings.Contains(got, "message cut") || (!cut && got != tt.in) {
				t.Errorf("Truncate(%d bytes, %d) = %q", len(tt.in), tt.max, got)
			}
		})
	}
}
