package analysis

import (
	"fmt"
	"strings"
	"time"
)

// State is one analysis of one revision over time, kept by the watcher between samples.
type State struct {
	// LastSample is when the queries were last run.
	LastSample time.Time
	// Complete is when the rollout was first seen complete: the bake time runs from it. Zero while incomplete.
	Complete time.Time
	// Latest is each query's latest result; Failing its failing values in a row, oldest first.
	Latest  map[string]Result
	Failing map[string][]float64
}

// Status is an analysis' verdict on a revision now.
type Status struct {
	Verdict Verdict
	// Detail explains a failure (query, value, threshold, the failing samples), or why the analysis is not done.
	Detail string
	// Inconclusive lists the queries whose latest sample was inconclusive, with why; "" when none.
	Inconclusive string
	// Next is how long until the next sample is due.
	Next time.Duration
	// FailedAt is when the failing sample was taken.
	FailedAt time.Time
}

// Due reports whether the queries should be sampled now.
func (a *Analysis) Due(st *State, now time.Time) bool {
	return st.LastSample.IsZero() || !now.Before(st.LastSample.Add(a.Interval))
}

// Observe updates the state for the rollout's completeness, before the verdict and before a sample: the bake
// time starts when the rollout is first seen complete and starts again if it is ever incomplete again.
func (a *Analysis) Observe(st *State, complete bool, now time.Time) {
	switch {
	case !complete:
		st.Complete = time.Time{}
	case st.Complete.IsZero():
		st.Complete = now
	}
}

// Record adds one sample's results to the state. A failure extends its query's run of failures, a pass ends it,
// and an inconclusive result does neither.
func (a *Analysis) Record(st *State, results []Result, now time.Time) {
	st.LastSample = now
	if st.Latest == nil {
		st.Latest, st.Failing = map[string]Result{}, map[string][]float64{}
	}
	for _, r := range results {
		st.Latest[r.Query] = r
		switch r.Verdict {
		case Fail:
			st.Failing[r.Query] = append(st.Failing[r.Query], r.Value)
		case Pass:
			delete(st.Failing, r.Query)
		}
	}
}

// Verdict is the analysis' verdict on the revision now: failed when a query failed FailureLimit samples in a row;
// passed when the rollout has been complete for the bake time and every query's latest sample, taken since it
// completed, passed; running otherwise.
func (a *Analysis) Verdict(st *State, now time.Time) Status {
	s := Status{Verdict: Running, Next: a.Interval}
	if !st.LastSample.IsZero() {
		s.Next = max(st.LastSample.Add(a.Interval).Sub(now), time.Second)
	}
	var inconclusive []string
	for _, q := range a.Queries {
		values := st.Failing[q.Name]
		if len(values) >= a.FailureLimit {
			r := st.Latest[q.Name]
			samples := make([]string, len(values))
			for i, v := range values {
				samples[i] = num(v)
			}
			return Status{Verdict: Fail, FailedAt: r.At, Detail: fmt.Sprintf("analysis %s, query %s: %s (%d failing samples in a row: %s)",
				a.Name, q.Name, r.Detail, len(values), strings.Join(samples, ", "))}
		}
		if r, ok := st.Latest[q.Name]; ok && r.Verdict == Inconclusive {
			inconclusive = append(inconclusive, fmt.Sprintf("query %s: %s", q.Name, r.Detail))
		}
	}
	if len(inconclusive) > 0 {
		s.Inconclusive = fmt.Sprintf("analysis %s is inconclusive: %s", a.Name, strings.Join(inconclusive, "; "))
	}
	switch {
	case st.Complete.IsZero():
		s.Detail = fmt.Sprintf("analysis %s: waiting for the rollout to complete", a.Name)
	case now.Before(st.Complete.Add(a.BakeTime)):
		s.Detail = fmt.Sprintf("analysis %s: baking until %s", a.Name, st.Complete.Add(a.BakeTime).UTC().Format(time.RFC3339))
		s.Next = min(s.Next, max(st.Complete.Add(a.BakeTime).Sub(now), time.Second))
	case !a.passedSince(st, st.Complete):
		s.Detail = fmt.Sprintf("analysis %s: baked; waiting for every query to pass a sample taken since the rollout completed", a.Name)
		if s.Inconclusive != "" {
			s.Detail = s.Inconclusive
		}
	default:
		s.Verdict, s.Detail = Pass, fmt.Sprintf("analysis %s passed", a.Name)
	}
	return s
}

func (a *Analysis) passedSince(st *State, since time.Time) bool {
	for _, q := range a.Queries {
		r, ok := st.Latest[q.Name]
		if !ok || r.Verdict != Pass || r.At.Before(since) {
			return false
		}
	}
	return true
}

// Combine is the verdict of several analyses of one revision: the first failure; passed when all passed; running
// otherwise, due at the earliest of their next samples.
func Combine(statuses ...Status) Status {
	out := Status{Verdict: Pass}
	var details, inconclusive []string
	for _, s := range statuses {
		if s.Verdict == Fail {
			return s
		}
		if s.Verdict != Pass {
			out.Verdict = Running
			details = append(details, s.Detail)
			if out.Next == 0 || (s.Next > 0 && s.Next < out.Next) {
				out.Next = s.Next
			}
		}
		if s.Inconclusive != "" {
			inconclusive = append(inconclusive, s.Inconclusive)
		}
	}
	out.Detail, out.Inconclusive = strings.Join(details, "; "), strings.Join(inconclusive, "; ")
	return out
}
