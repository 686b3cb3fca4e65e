package analysis

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Defaults and bounds of a RolloutAnalysis' timing.
const (
	DefaultInterval     = 30 * time.Second
	MinInterval         = 5 * time.Second
	DefaultFailureLimit = 2
	DefaultBakeTime     = 5 * time.Minute
	// maxNameBase is how much of generateName the API server keeps before its five random characters.
	maxNameBase = 58
)

// Spec is a RolloutAnalysis as the API holds it (v1alpha1 converts into it); zero values take the defaults.
type Spec struct {
	Name         string
	Interval     time.Duration
	FailureLimit int
	BakeTime     *time.Duration
	Queries      []QuerySpec
}

// QuerySpec is one query of a Spec; thresholds are numbers written as strings, "" when not set.
type QuerySpec struct {
	Name, Query, Max, Min, MaxRatioToStable, Traffic, MinTraffic string
}

// Analysis is a prepared Spec: templates parsed, thresholds read.
type Analysis struct {
	Name         string
	Interval     time.Duration
	FailureLimit int
	BakeTime     time.Duration
	Queries      []Query
}

// Query is a prepared QuerySpec.
type Query struct {
	Name                 string
	query, traffic       *template.Template
	max, min, ratio, low *float64
	// usesPods: the query names the revision's pods, without which a relative threshold compares nothing.
	usesPods bool
}

// Target is what a query template is rendered with.
type Target struct {
	Namespace, Name, Kind, Revision string
	// Pods and StablePods are regexes of the new and the stable revision's pod names, escaped for a PromQL string;
	// StablePods is "" when no revision is known-good.
	Pods, StablePods string
}

// sampleTarget renders templates at admission: every field set, as the watcher will set them.
var sampleTarget = Target{Namespace: "default", Name: "app", Kind: "Deployment", Revision: "2",
	Pods: PodsOf([]string{"app-7d4b9c-xk2lp"}), StablePods: RevisionPods("app-5f6d8b")}

// Prepare checks a Spec and prepares it. Every problem is reported with its field path, not only the first.
func Prepare(s Spec) (*Analysis, field.ErrorList) {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	a := &Analysis{Name: s.Name, Interval: s.Interval, FailureLimit: s.FailureLimit, BakeTime: DefaultBakeTime}
	if a.Interval == 0 {
		a.Interval = DefaultInterval
	}
	if a.Interval < MinInterval {
		errs = append(errs, field.Invalid(spec.Child("interval"), s.Interval.String(), fmt.Sprintf("must be at least %s: Prometheus scrapes are rarely more frequent", MinInterval)))
	}
	if a.FailureLimit == 0 {
		a.FailureLimit = DefaultFailureLimit
	}
	if a.FailureLimit < 1 {
		errs = append(errs, field.Invalid(spec.Child("failureLimit"), s.FailureLimit, "must be at least 1"))
	}
	if s.BakeTime != nil {
		a.BakeTime = *s.BakeTime
		if a.BakeTime < 0 {
			errs = append(errs, field.Invalid(spec.Child("bakeTime"), s.BakeTime.String(), "must not be negative"))
		}
	}
	if len(s.Queries) == 0 {
		errs = append(errs, field.Required(spec.Child("queries"), "at least one query"))
	}
	seen := map[string]bool{}
	for i, qs := range s.Queries {
		path := spec.Child("queries").Index(i)
		if seen[qs.Name] {
			errs = append(errs, field.Duplicate(path.Child("name"), qs.Name))
		}
		seen[qs.Name] = true
		q, qerrs := prepareQuery(qs, path)
		errs = append(errs, qerrs...)
		a.Queries = append(a.Queries, q)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return a, nil
}

func prepareQuery(qs QuerySpec, path *field.Path) (Query, field.ErrorList) {
	var errs field.ErrorList
	q := Query{Name: qs.Name, usesPods: strings.Contains(qs.Query, ".Pods")}
	if qs.Name == "" {
		errs = append(errs, field.Required(path.Child("name"), "Events and metrics name the query by it"))
	}
	var err *field.Error
	if q.query, err = promTemplate(path.Child("query"), qs.Query); err != nil {
		errs = append(errs, err)
	}
	if qs.Traffic != "" {
		if q.traffic, err = promTemplate(path.Child("traffic"), qs.Traffic); err != nil {
			errs = append(errs, err)
		}
	}
	for _, t := range []struct {
		name, value string
		into        **float64
	}{{"max", qs.Max, &q.max}, {"min", qs.Min, &q.min}, {"maxRatioToStable", qs.MaxRatioToStable, &q.ratio}, {"minTraffic", qs.MinTraffic, &q.low}} {
		if t.value == "" {
			continue
		}
		v, perr := strconv.ParseFloat(t.value, 64)
		if perr != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			errs = append(errs, field.Invalid(path.Child(t.name), t.value, "must be a number, such as 0.05"))
			continue
		}
		*t.into = &v
	}
	switch {
	case q.max == nil && q.min == nil && q.ratio == nil:
		errs = append(errs, field.Required(path, "a threshold: max, min or maxRatioToStable"))
	case q.max != nil && q.min != nil && *q.min > *q.max:
		errs = append(errs, field.Invalid(path.Child("min"), qs.Min, fmt.Sprintf("must not be above max (%s): no value could pass", qs.Max)))
	}
	if q.ratio != nil && *q.ratio <= 0 {
		errs = append(errs, field.Invalid(path.Child("maxRatioToStable"), qs.MaxRatioToStable, "must be above 0"))
	}
	if q.ratio != nil && !q.usesPods {
		errs = append(errs, field.Invalid(path.Child("maxRatioToStable"), qs.MaxRatioToStable, "needs a query that selects the revision's pods with {{.Pods}}: otherwise the new and the stable query are the same"))
	}
	if (qs.MinTraffic == "") != (qs.Traffic == "") {
		errs = append(errs, field.Invalid(path.Child("minTraffic"), qs.MinTraffic, "traffic and minTraffic go together: the query for the request rate, and the rate below which a sample proves nothing"))
	}
	return q, errs
}

// promTemplate parses a query template, renders it with a sample target and parses the result as PromQL.
func promTemplate(path *field.Path, text string) (*template.Template, *field.Error) {
	if strings.TrimSpace(text) == "" {
		return nil, field.Required(path, "a PromQL query")
	}
	t, err := template.New(path.String()).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, field.Invalid(path, text, "template: "+err.Error()+"; the fields are {{.Namespace}} {{.Name}} {{.Kind}} {{.Revision}} {{.Pods}} {{.StablePods}}")
	}
	rendered, err := render(t, sampleTarget)
	if err != nil {
		return nil, field.Invalid(path, text, "template: "+err.Error()+"; the fields are {{.Namespace}} {{.Name}} {{.Kind}} {{.Revision}} {{.Pods}} {{.StablePods}}")
	}
	if _, err := parser.NewParser(parser.Options{}).ParseExpr(rendered); err != nil {
		return nil, field.Invalid(path, text, "PromQL: "+err.Error())
	}
	return t, nil
}

func render(t *template.Template, target Target) (string, error) {
	var b bytes.Buffer
	if err := t.Execute(&b, target); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Render is the query, the traffic query ("" when it has none) and the stable revision's query ("" when the
// query has no relative threshold or no revision is stable) for a target.
func (q Query) Render(t Target) (query, traffic, stable string, err error) {
	if query, err = render(q.query, t); err != nil {
		return "", "", "", fmt.Errorf("render query %s: %w", q.Name, err)
	}
	if q.traffic != nil {
		if traffic, err = render(q.traffic, t); err != nil {
			return "", "", "", fmt.Errorf("render traffic of query %s: %w", q.Name, err)
		}
	}
	if q.ratio != nil && t.StablePods != "" {
		st := t
		st.Pods = t.StablePods
		if stable, err = render(q.query, st); err != nil {
			return "", "", "", fmt.Errorf("render stable query %s: %w", q.Name, err)
		}
	}
	return query, traffic, stable, nil
}

// RevisionPods is the regex of every pod a ReplicaSet named rs ever made: the API server names them
// generateName (rs + "-", cut to 58 characters) and five random characters. Pods already gone still match, so
// their requests, still inside a rate() window, are counted with the revision they belong to.
func RevisionPods(rs string) string {
	base := rs + "-"
	if len(base) > maxNameBase {
		base = base[:maxNameBase]
	}
	return promString(regexp.QuoteMeta(base) + "[a-z0-9]{5}")
}

// PodsOf is the regex of these pod names; one that matches nothing when there are none.
func PodsOf(names []string) string {
	if len(names) == 0 {
		return promString(`\x00`) // no pod name holds a NUL
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	return promString(strings.Join(quoted, "|"))
}

// promString escapes a regex for a double-quoted PromQL string, whose backslashes are escapes of their own.
func promString(re string) string { return strings.ReplaceAll(re, `\`, `\\`) }
