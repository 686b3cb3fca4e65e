package check

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/rollout-guard/rollout-guard/policies"
)

func sampleFindings() []Finding {
	deny := policies.Violation{Policy: "surge-unavailable", Enforcement: policies.Deny, Field: "spec.strategy.rollingUpdate.maxUnavailable", Value: "50%", Limit: "25%", Message: "too many pods down at once"}
	warn := policies.Violation{Policy: "image-pinned", Enforcement: policies.Warn, Message: `image "nginx:latest" moves <&> "quotes"`}
	return []Finding{
		{File: "apps/web.yaml", Document: 1, Line: 1, Kind: "Deployment", Namespace: "shop", Name: "web", Violations: []policies.Violation{deny, warn}},
		{File: "apps/web.yaml", Document: 2, Line: 30, Kind: "Deployment", Namespace: "shop", Name: "latest", Violations: []policies.Violation{warn}},
		{File: "apps with spaces/db.yaml", Document: 1, Line: 1, Kind: "StatefulSet", Namespace: "shop", Name: "db"},
	}
}

// The JUnit XML validates against the format's schema and counts what CI systems show: denials fail, warnings fail
// only with --fail-on-warn, input errors are errors.
func TestJUnit(t *testing.T) {
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		t.Fatal("xmllint is needed to validate JUnit XML against its schema: apt-get install libxml2-utils (make test installs it)")
	}
	for _, tc := range []struct {
		name                    string
		run                     Run
		tests, failures, errors int
		failed                  []string
	}{
		{name: "check", run: Run{Name: "rollout-guard check"}, tests: 3, failures: 1, failed: []string{"Deployment/web (document 1)"}},
		{name: "fail on warn", run: Run{Name: "rollout-guard check", FailOnWarn: true}, tests: 3, failures: 2, failed: []string{"Deployment/web (document 1)", "Deployment/latest (document 2)"}},
		{name: "input errors", run: Run{Name: "rollout-guard check", Errors: []string{"bad.yaml:3 (document 1): yaml: line 3: did not find expected key"}}, tests: 4, failures: 1, errors: 1, failed: []string{"Deployment/web (document 1)"}},
		{name: "audit", run: Run{Name: "rollout-guard audit", Live: true}, tests: 3, failures: 1, failed: []string{"Deployment/web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteJUnit(&buf, tc.run, sampleFindings()); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "junit.xml")
			if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(xmllint, "--noout", "--schema", "testdata/junit.xsd", path).CombinedOutput(); err != nil {
				t.Fatalf("JUnit XML does not validate: %v\n%s\n%s", err, out, buf.String())
			}
			var got junitSuites
			if err := xml.Unmarshal(buf.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Tests != tc.tests || got.Failures != tc.failures || got.Errors != tc.errors {
				t.Errorf("tests %d failures %d errors %d, want %d %d %d\n%s", got.Tests, got.Failures, got.Errors, tc.tests, tc.failures, tc.errors, buf.String())
			}
			var failed []string
			for _, s := range got.Suites {
				for _, c := range s.Cases {
					if c.Failure != nil {
						failed = append(failed, c.Name)
						if !strings.Contains(c.Failure.Text, "[") {
							t.Errorf("failure of %s does not name its policies: %q", c.Name, c.Failure.Text)
						}
					}
				}
			}
			if strings.Join(failed, ";") != strings.Join(tc.failed, ";") {
				t.Errorf("failed cases %q, want %q", failed, tc.failed)
			}
		})
	}
}

// sarifSchemaModule holds the OASIS SARIF 2.1.0 schema (errata 01) among its test data: the schema comes from the
// Go module proxy, pinned, rather than from a copy of ours.
const sarifSchemaModule = "github.com/securego/gosec/v2@v2.29.0"

func loadSARIFSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", sarifSchemaModule).Output()
	if err != nil {
		t.Fatalf("download %s for the SARIF schema: %v", sarifSchemaModule, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download %s: %v %s", sarifSchemaModule, err, out)
	}
	f, err := os.Open(filepath.Join(mod.Dir, "report", "sarif", "testdata", "sarif-schema-2.1.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("sarif-schema-2.1.0.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The SARIF log validates against the OASIS schema; a denial is an error and a warning a warning, at the
// workload's file and line (an audit's at its namespace and name); input errors are the run's notifications.
func TestSARIF(t *testing.T) {
	schema := loadSARIFSchema(t)
	for _, tc := range []struct {
		name string
		run  Run
		live bool
	}{
		{name: "check", run: Run{Name: "rollout-guard check", Version: "v1.2.3", Errors: []string{"bad.yaml: no such file"}}},
		{name: "audit", run: Run{Name: "rollout-guard audit", Live: true}, live: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteSARIF(&buf, tc.run, sampleFindings()); err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(inst); err != nil {
				t.Fatalf("SARIF does not validate: %v\n%s", err, buf.String())
			}
			var log sarifLog
			if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
				t.Fatal(err)
			}
			r := log.Runs[0]
			var got []string
			for _, res := range r.Results {
				var where string
				if l := res.Locations[0]; l.Physical != nil {
					where = l.Physical.Artifact.URI + ":" + strconv.Itoa(l.Physical.Region.StartLine)
				} else {
					where = l.Logical[0].FullyQualifiedName
				}
				got = append(got, res.Level+" "+res.RuleID+" "+where+" rule "+r.Tool.Driver.Rules[res.RuleIndex].ID)
			}
			want := "error surge-unavailable apps/web.yaml:1 rule surge-unavailable; warning image-pinned apps/web.yaml:1 rule image-pinned; warning image-pinned apps/web.yaml:30 rule image-pinned"
			if tc.live {
				want = "error surge-unavailable shop/Deployment/web rule surge-unavailable; warning image-pinned shop/Deployment/web rule image-pinned; warning image-pinned shop/Deployment/latest rule image-pinned"
			}
			if strings.Join(got, "; ") != want {
				t.Errorf("results\n%s\nwant\n%s", strings.Join(got, "; "), want)
			}
			if inv := r.Invocations[0]; inv.ExecutionSuccessful != (len(tc.run.Errors) == 0) || len(inv.Notifications) != len(tc.run.Errors) {
				t.Errorf("invocation %+v, want the input errors as notifications", inv)
			}
		})
	}
}
