package audit

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/rollout-guard/rollout-guard/policies"
)

// The PolicyReports rollout-guard writes: wgpolicyk8s.io/v1alpha2, what Policy Reporter, Kyverno's tooling and
// most clusters read today (OpenReports' Report has the same shape in another group, so following it later is a
// change of group).
const (
	ReportGroup   = "wgpolicyk8s.io"
	ReportVersion = "v1alpha2"
	ReportKind    = "PolicyReport"
	// ReportName is the name of the report in each namespace: one per namespace, updated in place.
	ReportName = "rollout-guard"
	// Source is every result's source, as reports from several engines name theirs.
	Source = "rollout-guard"
	// OmittedAnnotation counts the results a bounded report left out; its summary still counts them.
	OmittedAnnotation = "rollout-guard.io/omitted-results"
)

// Report is one namespace's PolicyReport as rollout-guard writes it.
type Report struct {
	Namespace string  `json:"-"`
	Summary   Summary `json:"summary"`
	Results   []Entry `json:"results"`
	// Omitted results, beyond the bound; counted in Summary.
	Omitted int `json:"-"`
}

// Summary counts results. Pass counts the workloads audited with no finding: results list only what needs a
// look, so that a namespace of a thousand clean workloads has a small report.
type Summary struct {
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Warn  int `json:"warn"`
	Error int `json:"error"`
	Skip  int `json:"skip"`
}

// Entry is one result of a report: one policy's finding on one workload.
type Entry struct {
	Source     string            `json:"source"`
	Policy     string            `json:"policy"`
	Category   string            `json:"category,omitempty"`
	Timestamp  Timestamp         `json:"timestamp"`
	Result     string            `json:"result"`
	Scored     bool              `json:"scored"`
	Resources  []Resource        `json:"resources"`
	Message    string            `json:"message"`
	Properties map[string]string `json:"properties,omitempty"`
}

// Timestamp is when a result was first found, as the report's schema writes times.
type Timestamp struct {
	Seconds int64 `json:"seconds"`
	Nanos   int32 `json:"nanos"`
}

// Resource references the workload a result is about.
type Resource struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Namespace  string    `json:"namespace"`
	Name       string    `json:"name"`
	UID        types.UID `json:"uid,omitempty"`
}

// Result values, from the report's schema.
const (
	resultFail  = "fail"
	resultWarn  = "warn"
	resultError = "error"
)

// Build makes one report per namespace audited. previous are the reports in place, by namespace: a result they
// already hold keeps its timestamp, so that the time says since when a workload has been in violation, and an
// audit that finds nothing new writes nothing. A report holds at most maxResults results, failures first.
func Build(res Result, previous map[string]Report, now time.Time, maxResults int) map[string]Report {
	reports := map[string]Report{}
	for ns, n := range res.Workloads {
		reports[ns] = Report{Namespace: ns, Summary: Summary{Pass: n}, Results: []Entry{}}
	}
	builtIn := map[string]bool{}
	for _, name := range policies.BuiltInNames {
		builtIn[name] = true
	}
	for _, f := range res.Findings {
		r := reports[f.Namespace]
		if len(f.Violations) > 0 {
			r.Summary.Pass--
		}
		ref := Ref{f.Kind, f.Namespace, f.Name}
		for _, v := range f.Violations {
			out := Entry{
				Source: Source, Policy: v.Policy, Category: "RolloutPolicy", Scored: true, Message: v.Message,
				Resources: []Resource{{APIVersion: "apps/v1", Kind: f.Kind, Namespace: f.Namespace, Name: f.Name, UID: res.UIDs[ref]}},
			}
			if builtIn[v.Policy] {
				out.Category = "built-in"
			}
			out.Result = verdict(v)
			switch out.Result {
			case resultError:
				r.Summary.Error++
			case resultFail:
				r.Summary.Fail++
			default:
				r.Summary.Warn++
			}
			out.Properties = properties(v)
			out.Timestamp = firstSeen(previous[f.Namespace], out, now)
			r.Results = append(r.Results, out)
		}
		reports[f.Namespace] = r
	}
	for ns, r := range reports {
		slices.SortFunc(r.Results, func(a, b Entry) int {
			return cmp.Or(cmp.Compare(rank(a.Result), rank(b.Result)), cmp.Compare(a.Resources[0].Kind, b.Resources[0].Kind),
				cmp.Compare(a.Resources[0].Name, b.Resources[0].Name), cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Message, b.Message))
		})
		if len(r.Results) > maxResults {
			r.Omitted = len(r.Results) - maxResults
			r.Results = r.Results[:maxResults]
		}
		reports[ns] = r
	}
	return reports
}

// rank orders results by what needs a look first.
func rank(result string) int {
	return map[string]int{resultFail: 0, resultError: 1, resultWarn: 2}[result]
}

func properties(v policies.Violation) map[string]string {
	p := map[string]string{}
	if v.Field != "" {
		p["field"] = v.Field
	}
	if v.Value != nil {
		p["value"] = fmt.Sprint(v.Value)
	}
	if v.Limit != "" {
		p["limit"] = v.Limit
	}
	if v.Fix != "" {
		p["fix"] = v.Fix
	}
	if len(p) == 0 {
		return nil
	}
	return p
}

// firstSeen is the time the same result (policy, workload, verdict and message) was first reported, or now.
func firstSeen(previous Report, r Entry, now time.Time) Timestamp {
	for _, p := range previous.Results {
		if p.Policy == r.Policy && p.Result == r.Result && p.Message == r.Message && len(p.Resources) == 1 &&
			p.Resources[0].Kind == r.Resources[0].Kind && p.Resources[0].Name == r.Resources[0].Name {
			return p.Timestamp
		}
	}
	return Timestamp{Seconds: now.Unix()}
}

// Same says whether two reports say the same: writing one that does would only churn the API server and watchers.
func Same(a, b Report) bool {
	if a.Summary != b.Summary || a.Omitted != b.Omitted || len(a.Results) != len(b.Results) {
		return false
	}
	for i := range a.Results {
		x, y := a.Results[i], b.Results[i]
		if x.Policy != y.Policy || x.Result != y.Result || x.Message != y.Message || x.Timestamp != y.Timestamp ||
			x.Category != y.Category || x.Source != y.Source || x.Scored != y.Scored ||
			!slices.Equal(x.Resources, y.Resources) || !maps.Equal(x.Properties, y.Properties) {
			return false
		}
	}
	return true
}
