package policies

import (
	"fmt"
	"slices"
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
// exempt annotation, when annotation exemptions are enabled, the policy allows
// it, a reason is given and the exemption has not expired. It returns the
// violations that still stand, a warning for every exemption used or refused,
// and the policies waived.
//
// The annotation is written by whoever may edit the workload, the very people
// the policies apply to, so it waives nothing unless a cluster admin turned it
// on (policies.annotationExemptions); a RolloutPolicyException is the way.
func ApplyExemptions(violations []Violation, annotations map[string]string, now time.Time, enabled bool) (kept []Violation, warnings, used []string) {
	listed := annotations[AnnotationExempt]
	if listed == "" {
		return violations, nil, nil
	}
	exempt := map[string]bool{}
	for _, p := range strings.Split(listed, ",") {
		exempt[strings.TrimSpace(p)] = true
	}
	if !enabled {
		var named []string
		for _, v := range violations {
			if exempt[v.Policy] && !slices.Contains(named, v.Policy) {
				named = append(named, v.Policy)
			}
		}
		if len(named) > 0 {
			warnings = append(warnings, fmt.Sprintf("%s waives nothing in this cluster (policies.annotationExemptions is off): a RolloutPolicyException, granted by your platform team, can waive %s", AnnotationExempt, strings.Join(named, ",")))
		}
		return violations, warnings, nil
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
// field, value, limit and how to fix it. Who may waive a policy is said once
// per answer (WaiverHint), not once per violation.
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
	return b.String()
}

// WaiverHint closes a denial: the way to an exception, which is not the
// workload's editor's to take.
const WaiverHint = "If this workload must break a policy for a while, a platform admin can grant a RolloutPolicyException (kubectl explain rolloutpolicyexception)."
