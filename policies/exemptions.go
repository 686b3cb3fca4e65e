package policies

import (
	"fmt"
	"strings"
	"time"
)

// Exemption annotations on a workload.
const (
	// AnnotationExempt lists policies the object waives: "probes-required,image-pinned".
	AnnotationExempt = "rollout-guard.io/exempt"
	// AnnotationExemptReason is required for an exemption to apply.
	AnnotationExemptReason = "rollout-guard.io/exempt-reason"
	// AnnotationExemptUntil optionally ends the exemption (2026-12-31 or RFC 3339).
	AnnotationExemptUntil = "rollout-guard.io/exempt-until"
)

// ApplyExemptions waives violations of the policies an object lists in its
// exempt annotation, when the policy allows it, a reason is given and the
// exemption has not expired. It returns the violations that still stand, a
// warning for every exemption used or refused, and the policies waived.
func ApplyExemptions(violations []Violation, annotations map[string]string, now time.Time) (kept []Violation, warnings, used []string) {
	listed := annotations[AnnotationExempt]
	if listed == "" {
		return violations, nil, nil
	}
	exempt := map[string]bool{}
	for _, p := range strings.Split(listed, ",") {
		exempt[strings.TrimSpace(p)] = true
	}
	reason := strings.TrimSpace(annotations[AnnotationExemptReason])
	expired := ""
	if until := annotations[AnnotationExemptUntil]; until != "" {
		end, err := parseUntil(until)
		switch {
		case err != nil:
			warnings = append(warnings, fmt.Sprintf("%s=%q is not a date (use 2026-12-31 or RFC 3339); the exemption is ignored", AnnotationExemptUntil, until))
			expired = until
		case !now.Before(end):
			expired = until
		}
	}
	said := map[string]bool{}
	say := func(msg string) {
		if !said[msg] {
			warnings, said[msg] = append(warnings, msg), true
		}
	}
	for _, v := range violations {
		if !exempt[v.Policy] {
			kept = append(kept, v)
			continue
		}
		switch {
		case !v.Exemptible:
			say(fmt.Sprintf("policy %s does not allow exemptions; %s is ignored for it", v.Policy, AnnotationExempt))
		case reason == "":
			say(fmt.Sprintf("exemption from %s ignored: set %s to say why", v.Policy, AnnotationExemptReason))
		case expired != "":
			say(fmt.Sprintf("exemption from %s ignored: it expired (%s=%s)", v.Policy, AnnotationExemptUntil, expired))
		default:
			used = append(used, v.Policy)
			say(fmt.Sprintf("exempted from %s (reason: %s): %s", v.Policy, reason, v.Message))
			continue
		}
		kept = append(kept, v)
	}
	return kept, warnings, used
}

func parseUntil(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.Add(24 * time.Hour), nil // through the end of that day
	}
	return time.Parse(time.RFC3339, s)
}

// Describe says what is wrong to the person who ran kubectl: policy,
// field, value, limit, how to fix it and how to opt out.
func Describe(v Violation) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] ", v.Policy)
	if v.Field != "" {
		b.WriteString(v.Field)
		if v.Value != nil {
			fmt.Fprintf(&b, " = %v", v.Value)
		}
		b.WriteString(": ")
	}
	b.WriteString(v.Message)
	if v.Limit != "" {
		fmt.Fprintf(&b, " (limit: %s)", v.Limit)
	}
	if v.Fix != "" {
		fmt.Fprintf(&b, ". Fix: %s", v.Fix)
	}
	if v.Exemptible && v.Enforcement == Deny && !strings.Contains(v.Fix, AnnotationExempt) {
		fmt.Fprintf(&b, ". Or opt out: annotate the workload %s: %s and %s: <why>", AnnotationExempt, v.Policy, AnnotationExemptReason)
	}
	return b.String()
}
