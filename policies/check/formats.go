package check

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"

	"github.com/rollout-guard/rollout-guard/policies"
)

// Run describes one run of check or audit for the machine-readable formats.
type Run struct {
	// Name of the run, e.g. "rollout-guard check".
	Name string
	// Version of rollout-guard.
	Version string
	// Live: the findings are of workloads running in a cluster (audit), located by namespace and name rather
	// than by file and line.
	Live bool
	// FailOnWarn: a warning fails the run, as --fail-on-warn makes it.
	FailOnWarn bool
	// Errors: inputs that could not be read or judged.
	Errors []string
}

// JUnit XML, the shape Jenkins, GitLab, Azure Pipelines and the GitHub test reporters read: a test suite per file
// (per namespace for an audit), a test case per workload.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the findings as JUnit XML. A workload a policy denies is a failed test case, one a policy only
// warns about is a failure with FailOnWarn and a passing case with the warnings as its output otherwise; an input
// error is an errored test case.
func WriteJUnit(w io.Writer, run Run, findings []Finding) error {
	out := junitSuites{Name: run.Name}
	suites := map[string]int{}
	suite := func(name string) *junitSuite {
		i, ok := suites[name]
		if !ok {
			i = len(out.Suites)
			suites[name] = i
			out.Suites = append(out.Suites, junitSuite{Name: name})
		}
		return &out.Suites[i]
	}
	for _, f := range findings {
		s := suite(f.File)
		c := junitCase{Classname: f.File, Name: fmt.Sprintf("%s/%s", f.Kind, f.Name)}
		if !run.Live {
			c.Name = fmt.Sprintf("%s/%s %s", f.Kind, f.Name, strings.TrimPrefix(f.Where(), f.File+" "))
		}
		var lines []string
		for _, v := range f.Violations {
			lines = append(lines, fmt.Sprintf("%s: %s", v.Enforcement, policies.Describe(v)))
		}
		switch {
		case f.Denied(), f.Warned() && run.FailOnWarn:
			kind := "deny"
			if !f.Denied() {
				kind = "warn"
			}
			c.Failure = &junitProblem{Message: lines[0], Type: kind, Text: strings.Join(lines, "\n")}
			s.Failures++
		default:
			c.SystemOut = strings.Join(append(lines, f.Warnings...), "\n")
		}
		s.Tests++
		s.Cases = append(s.Cases, c)
	}
	for i, e := range run.Errors {
		s := suite("input errors")
		s.Tests++
		s.Errors++
		s.Cases = append(s.Cases, junitCase{Classname: "input", Name: fmt.Sprintf("input error %d", i+1), Error: &junitProblem{Message: e, Type: "input", Text: e}})
	}
	for _, s := range out.Suites {
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// SARIF 2.1.0, what GitHub code scanning and most security dashboards ingest.
const sarifSchema = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool        sarifTool         `json:"tool"`
	Invocations []sarifInvocation `json:"invocations"`
	Results     []sarifResult     `json:"results"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri"`
	Rules          []sarifRule `json:"rules"`
}

type sarifRule struct {
	ID               string       `json:"id"`
	ShortDescription sarifMessage `json:"shortDescription"`
}

type sarifMessage struct {
	Text string `json:"text"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool                `json:"executionSuccessful"`
	Notifications       []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level   string       `json:"level"`
	Message sarifMessage `json:"message"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	RuleIndex int             `json:"ruleIndex"`
	Level     string          `json:"level"`
	Message   sarifMessage    `json:"message"`
	Locations []sarifLocation `json:"locations"`
}

type sarifLocation struct {
	Physical *sarifPhysical `json:"physicalLocation,omitempty"`
	Logical  []sarifLogical `json:"logicalLocations,omitempty"`
	Message  *sarifMessage  `json:"message,omitempty"`
}

type sarifPhysical struct {
	Artifact sarifArtifact `json:"artifactLocation"`
	Region   sarifRegion   `json:"region"`
}

type sarifArtifact struct {
	URI string `json:"uri"`
}

type sarifRegion struct {
	StartLine int `json:"startLine"`
}

type sarifLogical struct {
	FullyQualifiedName string `json:"fullyQualifiedName"`
	Kind               string `json:"kind"`
}

// WriteSARIF writes the findings as a SARIF 2.1.0 log: a rule per policy that found something, a result per
// violation (a denial is an error, a warning a warning) at the workload's file and line, or, for an audit, at the
// workload's namespace and name; input errors are the invocation's notifications.
func WriteSARIF(w io.Writer, run Run, findings []Finding) error {
	r := sarifRun{
		Tool:        sarifTool{Driver: sarifDriver{Name: "rollout-guard", Version: run.Version, InformationURI: "https://github.com/rollout-guard/rollout-guard", Rules: []sarifRule{}}},
		Invocations: []sarifInvocation{{ExecutionSuccessful: len(run.Errors) == 0}},
		Results:     []sarifResult{},
	}
	for _, e := range run.Errors {
		r.Invocations[0].Notifications = append(r.Invocations[0].Notifications, sarifNotification{Level: "error", Message: sarifMessage{Text: e}})
	}
	rules := map[string]int{}
	for _, f := range findings {
		for _, v := range f.Violations {
			i, ok := rules[v.Policy]
			if !ok {
				i = len(r.Tool.Driver.Rules)
				rules[v.Policy] = i
				r.Tool.Driver.Rules = append(r.Tool.Driver.Rules, sarifRule{ID: v.Policy, ShortDescription: sarifMessage{Text: "rollout-guard policy " + v.Policy}})
			}
			level := "warning"
			if v.Enforcement == policies.Deny {
				level = "error"
			}
			loc := sarifLocation{Message: &sarifMessage{Text: fmt.Sprintf("%s/%s", f.Kind, f.Name)}}
			if run.Live {
				loc.Logical = []sarifLogical{{FullyQualifiedName: fmt.Sprintf("%s/%s/%s", f.Namespace, f.Kind, f.Name), Kind: "resource"}}
			} else {
				loc.Physical = &sarifPhysical{Artifact: sarifArtifact{URI: (&url.URL{Path: f.File}).String()}, Region: sarifRegion{StartLine: max(f.Line, 1)}}
			}
			r.Results = append(r.Results, sarifResult{RuleID: v.Policy, RuleIndex: i, Level: level, Message: sarifMessage{Text: policies.Describe(v)}, Locations: []sarifLocation{loc}})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(sarifLog{Schema: sarifSchema, Version: "2.1.0", Runs: []sarifRun{r}})
}

// Formats are the output formats of check and audit.
var Formats = []string{"text", "json", "github", "junit", "sarif"}

// ValidFormat says whether format is one of Formats.
func ValidFormat(format string) bool { return slices.Contains(Formats, format) }
