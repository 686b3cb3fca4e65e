package policies

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

func TestApplyExceptions(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	const maxAhead = 90 * 24 * time.Hour
	surge := Violation{Policy: "surge-unavailable", Enforcement: Deny, Field: "spec.strategy.rollingUpdate.maxUnavailable", Message: "too many"}
	probes := Violation{Policy: "probes-required", Enforcement: Deny, Field: "spec.template.spec.containers[0]", Message: "no probe"}
	web := Workload{Kind: "Deployment", Name: "web", Labels: map[string]string{"tier": "batch"}}
	exc := func(mod func(*Exception)) Exception {
		e := Exception{Namespace: "team", Name: "batch", Policies: []string{"surge-unavailable"}, Names: []string{"web"}, Reason: "nightly", Expires: now.Add(time.Hour)}
		if mod != nil {
			mod(&e)
		}
		return e
	}
	tests := []struct {
		name       string
		exceptions []Exception
		workload   Workload
		kept       []string // policies still violated
		used       []string // exception keys used
		warning    string   // a warning that must be given
	}{
		{"no exception", nil, web, []string{"surge-unavailable", "probes-required"}, nil, ""},
		{"waives the policy it names for the workload it names", []Exception{exc(nil)}, web, []string{"probes-required"}, []string{"team/batch"}, "RolloutPolicyException team/batch waives surge-unavailable until 2026-11-23T13:00:00Z (reason: nightly)"},
		{"another workload", []Exception{exc(nil)}, Workload{Kind: "Deployment", Name: "api"}, []string{"surge-unavailable", "probes-required"}, nil, ""},
		{"another kind", []Exception{exc(func(e *Exception) { e.Kinds = []string{"StatefulSet"} })}, web, []string{"surge-unavailable", "probes-required"}, nil, ""},
		{"by selector", []Exception{exc(func(e *Exception) { e.Names, e.Selector = nil, labels.SelectorFromSet(labels.Set{"tier": "batch"}) })}, web, []string{"probes-required"}, []string{"team/batch"}, ""},
		{"selector and names both must match", []Exception{exc(func(e *Exception) { e.Selector = labels.SelectorFromSet(labels.Set{"tier": "web"}) })}, web, []string{"surge-unavailable", "probes-required"}, nil, ""},
		{"neither names nor selector covers nothing", []Exception{exc(func(e *Exception) { e.Names = nil })}, web, []string{"surge-unavailable", "probes-required"}, nil, ""},
		{"expired stops at once", []Exception{exc(func(e *Exception) { e.Expires = now })}, web, []string{"surge-unavailable", "probes-required"}, nil, "expired at 2026-11-23T12:00:00Z, so surge-unavailable applies in full again"},
		{"too far ahead is refused at every use", []Exception{exc(func(e *Exception) { e.Expires = now.Add(maxAhead + time.Minute) })}, web, []string{"surge-unavailable", "probes-required"}, nil, "more than 2160h0m0s ahead"},
		{"an expired one does not hide a valid one", []Exception{exc(func(e *Exception) { e.Name, e.Expires = "a-old", now.Add(-time.Hour) }), exc(nil)}, web, []string{"probes-required"}, []string{"team/batch"}, "team/a-old expired"},
		{"two exceptions, two policies", []Exception{exc(nil), exc(func(e *Exception) { e.Name, e.Policies = "probes", []string{"probes-required"} })}, web, nil, []string{"team/batch", "team/probes"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kept, warnings, used := ApplyExceptions([]Violation{surge, probes}, tt.exceptions, tt.workload, now, maxAhead)
			var gotKept, gotUsed []string
			for _, v := range kept {
				gotKept = append(gotKept, v.Policy)
			}
			for _, u := range used {
				gotUsed = append(gotUsed, u.Exception.Key())
			}
			if strings.Join(gotKept, ",") != strings.Join(tt.kept, ",") || strings.Join(gotUsed, ",") != strings.Join(tt.used, ",") {
				t.Errorf("kept %v used %v, want kept %v used %v", gotKept, gotUsed, tt.kept, tt.used)
			}
			if tt.warning != "" && !strings.Contains(strings.Join(warnings, "\n"), tt.warning) {
				t.Errorf("warnings %q lack %q", warnings, tt.warning)
			}
			if len(used) > 0 && len(warnings) == 0 {
				t.Error("an exception was used without a warning")
			}
		})
	}
}

func TestApplyExemptionsOnlyWhenEnabled(t *testing.T) {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	v := Violation{Policy: "surge-unavailable", Enforcement: Deny, Message: "too many", Exemptible: true}
	fixed := Violation{Policy: "probes-required", Enforcement: Deny, Message: "no probe"}
	ann := func(extra map[string]string) map[string]string {
		m := map[string]string{AnnotationExempt: "surge-unavailable,probes-required"}
		for k, x := range extra {
			m[k] = x
		}
		return m
	}
	tests := []struct {
		name        string
		annotations map[string]string
		enabled     bool
		kept        int
		warning     string
	}{
		{"off: waives nothing and says where a waiver comes from", ann(map[string]string{AnnotationExemptReason: "because"}), false, 2, "waives nothing in this cluster (policies.annotationExemptions is off)"},
		{"on, with a reason: exemptible waived", ann(map[string]string{AnnotationExemptReason: "because"}), true, 1, "exempted from surge-unavailable (reason: because)"},
		{"on, no reason", ann(nil), true, 2, "set rollout-guard.io/exempt-reason"},
		{"on, expired", ann(map[string]string{AnnotationExemptReason: "because", AnnotationExemptUntil: "2026-11-22"}), true, 2, "it expired"},
		{"on, not exemptible", ann(map[string]string{AnnotationExemptReason: "because"}), true, 1, "policy probes-required does not allow exemptions"},
		{"no annotation", nil, false, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kept, warnings, _ := ApplyExemptions([]Violation{v, fixed}, tt.annotations, now, tt.enabled)
			if len(kept) != tt.kept {
				t.Errorf("kept %d, want %d: %v", len(kept), tt.kept, kept)
			}
			if tt.warning != "" && !strings.Contains(strings.Join(warnings, "\n"), tt.warning) {
				t.Errorf("warnings %q lack %q", warnings, tt.warning)
			}
			if tt.warning == "" && len(warnings) > 0 {
				t.Errorf("unexpected warnings %q", warnings)
			}
		})
	}
}
