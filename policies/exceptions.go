package policies

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

// Exception waives some policies for some workloads of one namespace, until Expires. It is the evaluator's view of
// a RolloutPolicyException: who may create one is decided by RBAC, so it is trusted as far as it goes, and it
// goes no further than its expiry.
type Exception struct {
	// Namespace and Name identify it in warnings and in its status.
	Namespace, Name string
	Policies        []string
	// Kinds, Names and Selector select workloads: Kinds empty means every kind; Names and Selector, where set,
	// must both match.
	Kinds    []string
	Names    []string
	Selector labels.Selector
	Reason   string
	Expires  time.Time
}

// Key is namespace/name.
func (e Exception) Key() string { return e.Namespace + "/" + e.Name }

// Workload is what an exception is matched against.
type Workload struct {
	Kind, Name string
	Labels     map[string]string
}

// Covers reports whether the exception selects the workload. An exception with neither names nor a selector
// selects nothing: admission refuses one, and one that got in while the webhook was down must not cover a
// namespace by omission.
func (e Exception) Covers(w Workload) bool {
	if len(e.Kinds) > 0 && !slices.Contains(e.Kinds, w.Kind) {
		return false
	}
	if len(e.Names) == 0 && e.Selector == nil {
		return false
	}
	if len(e.Names) > 0 && !slices.Contains(e.Names, w.Name) {
		return false
	}
	return e.Selector == nil || e.Selector.Matches(labels.Set(w.Labels))
}

// ExceptionUse says which policies one exception waived in one request.
type ExceptionUse struct {
	Exception Exception
	Policies  []string
}

// ApplyExceptions waives the violations of policies that an exception covering the workload names, while the
// exception is in force: before its expiry, and expiring no further than maxAhead from now (an exception that got
// in with a longer one, say while the webhook was down, is refused at every use instead). It returns the
// violations that still stand, a warning for every exception used, expired or refused, and the uses.
func ApplyExceptions(violations []Violation, exceptions []Exception, w Workload, now time.Time, maxAhead time.Duration) (kept []Violation, warnings []string, used []ExceptionUse) {
	if len(violations) == 0 || len(exceptions) == 0 {
		return violations, nil, nil
	}
	exceptions = slices.Clone(exceptions)
	slices.SortFunc(exceptions, func(a, b Exception) int { return strings.Compare(a.Name, b.Name) })
	said := map[string]bool{}
	say := func(msg string) {
		if !said[msg] {
			warnings, said[msg] = append(warnings, msg), true
		}
	}
	waived := make([][]Violation, len(exceptions)) // by exception, in exceptions' order
	for _, v := range violations {
		by := inForce(exceptions, v.Policy, w, now, maxAhead, say)
		if by < 0 {
			kept = append(kept, v)
			continue
		}
		waived[by] = append(waived[by], v)
	}
	for i, e := range exceptions {
		vs := waived[i]
		if len(vs) == 0 {
			continue
		}
		use := ExceptionUse{Exception: e}
		byPolicy := map[string][]Violation{}
		for _, v := range vs {
			if !slices.Contains(use.Policies, v.Policy) {
				use.Policies = append(use.Policies, v.Policy)
			}
			byPolicy[v.Policy] = append(byPolicy[v.Policy], v)
		}
		used = append(used, use)
		for _, p := range use.Policies {
			more := ""
			if n := len(byPolicy[p]); n > 1 {
				more = fmt.Sprintf(" (and %d more)", n-1)
			}
			say(fmt.Sprintf("RolloutPolicyException %s waives %s until %s (reason: %s): %s%s", e.Key(), p,
				e.Expires.UTC().Format(time.RFC3339), e.Reason, Describe(byPolicy[p][0]), more))
		}
	}
	return kept, warnings, used
}

// inForce returns the index of the first exception that covers the workload for policy and is in force, or -1; it
// says why each one that covers it is not.
func inForce(exceptions []Exception, policy string, w Workload, now time.Time, maxAhead time.Duration, say func(string)) int {
	for i, e := range exceptions {
		if !slices.Contains(e.Policies, policy) || !e.Covers(w) {
			continue
		}
		switch {
		case !now.Before(e.Expires):
			say(fmt.Sprintf("RolloutPolicyException %s expired at %s, so %s applies in full again", e.Key(), e.Expires.UTC().Format(time.RFC3339), policy))
		case e.Expires.Sub(now) > maxAhead:
			say(fmt.Sprintf("RolloutPolicyException %s is ignored: it expires at %s, more than %s ahead (policies.maxExceptionDuration)", e.Key(), e.Expires.UTC().Format(time.RFC3339), maxAhead))
		default:
			return i
		}
	}
	return -1
}
