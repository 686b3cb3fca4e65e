package analysis

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Verdict is what one sample, or an analysis so far, says of a revision.
type Verdict string

// Verdicts. Inconclusive never fails a revision and never passes it.
const (
	Pass         Verdict = "pass"
	Fail         Verdict = "fail"
	Inconclusive Verdict = "inconclusive"
	// Running: an analysis has not failed, and has not passed yet (the rollout or the bake time is not over, or
	// its latest samples are not all passing).
	Running Verdict = "running"
)

// Value is one query's answer from Prometheus: a number, or why there is none.
type Value struct {
	V float64
	// Missing says why there is no number ("no data", "3 series", "connection refused"); "" when there is one.
	Missing string
}

// Number is a Value holding v.
func Number(v float64) Value {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return Value{Missing: "the value is " + strconv.FormatFloat(v, 'g', -1, 64)}
	}
	return Value{V: v}
}

// Observation is what the watcher read for one query of one sample: the query's value, and where the query has
// them, the traffic it stands on and the same query over the stable revision's pods.
type Observation struct {
	Value   Value
	Traffic *Value
	Stable  *Value
}

// Result is one query's verdict on one sample.
type Result struct {
	Query   string
	Verdict Verdict
	// Value is the query's value (0 when Missing).
	Value float64
	// Detail says why, for a person: "value 0.203 is above max 0.05", "no data".
	Detail string
	At     time.Time
}

// Judge gives one sample's verdict. max and min stand alone; maxRatioToStable with max fails only when both are
// breached; with no stable revision at all (the first revision) the ratio is not applied.
func (q Query) Judge(o Observation, at time.Time) Result {
	r := Result{Query: q.Name, At: at, Verdict: Inconclusive}
	if o.Value.Missing != "" {
		r.Detail = o.Value.Missing
		return r
	}
	v := o.Value.V
	r.Value = v
	if q.low != nil {
		switch {
		case o.Traffic == nil:
			r.Detail = "no traffic query result"
			return r
		case o.Traffic.Missing != "":
			r.Detail = "traffic: " + o.Traffic.Missing
			return r
		case o.Traffic.V < *q.low:
			r.Detail = fmt.Sprintf("traffic %s is below minTraffic %s", num(o.Traffic.V), num(*q.low))
			return r
		}
	}
	var breaches, passes []string
	if q.min != nil {
		if v < *q.min {
			breaches = append(breaches, fmt.Sprintf("value %s is below min %s", num(v), num(*q.min)))
		} else {
			passes = append(passes, fmt.Sprintf("value %s is not below min %s", num(v), num(*q.min)))
		}
	}
	aboveMax := q.max != nil && v > *q.max
	switch {
	case q.ratio != nil && o.Stable != nil && o.Stable.Missing != "":
		if q.max == nil || aboveMax {
			r.Detail = "stable revision: " + o.Stable.Missing
			return r
		}
		passes = append(passes, fmt.Sprintf("value %s is not above max %s", num(v), num(*q.max)))
	case q.ratio != nil && o.Stable != nil:
		limit := *q.ratio * o.Stable.V
		aboveRatio := v > limit
		switch {
		case aboveRatio && (q.max == nil || aboveMax):
			msg := fmt.Sprintf("value %s is above %s x the stable revision's %s", num(v), num(*q.ratio), num(o.Stable.V))
			if q.max != nil {
				msg += fmt.Sprintf(" and above max %s", num(*q.max))
			}
			breaches = append(breaches, msg)
		default:
			passes = append(passes, fmt.Sprintf("value %s is within %s x the stable revision's %s or not above max", num(v), num(*q.ratio), num(o.Stable.V)))
		}
	case q.max != nil:
		if aboveMax {
			breaches = append(breaches, fmt.Sprintf("value %s is above max %s", num(v), num(*q.max)))
		} else {
			passes = append(passes, fmt.Sprintf("value %s is not above max %s", num(v), num(*q.max)))
		}
	}
	if len(breaches) > 0 {
		r.Verdict, r.Detail = Fail, strings.Join(breaches, "; ")
		return r
	}
	if len(passes) == 0 {
		// only a ratio, and no stable revision to compare with
		passes = append(passes, fmt.Sprintf("value %s (no stable revision to compare with)", num(v)))
	}
	r.Verdict, r.Detail = Pass, strings.Join(passes, "; ")
	return r
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }
