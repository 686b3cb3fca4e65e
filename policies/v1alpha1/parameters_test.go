package v1alpha1

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestParameterSchema(t *testing.T) {
	const schema = `{"type": "object", "required": ["label"], "properties": {
		"label": {"type": "string", "minLength": 1},
		"minReplicas": {"type": "integer", "minimum": 1},
		"teams": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
		"extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
		"byNamespace": {"type": "object", "additionalProperties": {"type": "integer"}}}}`
	tests := []struct {
		name, schema, params string
		want                 string // in the error; "" for none
	}{
		{"declared and valid", schema, `{"label": "team", "minReplicas": 2, "teams": [{"name": "a"}], "extra": {"any": 1}, "byNamespace": {"prod": 3}}`, ""},
		{"a misspelt parameter is refused, naming the declared ones", schema, `{"lable": "team", "label": "team"}`,
			`spec.parameters.lable: Unsupported value: "lable": supported values: "byNamespace", "extra", "label", "minReplicas", "teams"`},
		{"a required parameter missing", schema, `{"minReplicas": 2}`, "label"},
		{"a wrong type", schema, `{"label": "team", "minReplicas": "two"}`, "minReplicas"},
		{"below the minimum", schema, `{"label": "team", "minReplicas": 0}`, "minReplicas"},
		{"a misspelt key inside a list item", schema, `{"label": "team", "teams": [{"nmae": "a"}]}`, "spec.parameters.teams[0].nmae"},
		{"typed additionalProperties", schema, `{"label": "team", "byNamespace": {"prod": "three"}}`, "byNamespace"},
		{"no parameters against a schema that requires some", schema, ``, "label"},
		{"no schema: nothing is checked", ``, `{"lable": "team"}`, ""},
		{"a schema that is not OpenAPI", `{"type": "object", "propertys": {}}`, `{}`, "spec.parameterSchema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rp := &RolloutPolicy{ObjectMeta: metav1.ObjectMeta{Name: "team-label"}, Spec: RolloutPolicySpec{
				Rego: "package rollout_guard.team_label\n\ndeny contains \"x\" if { false }\n"}}
			if tt.schema != "" {
				rp.Spec.ParameterSchema = &runtime.RawExtension{Raw: []byte(tt.schema)}
			}
			if tt.params != "" {
				rp.Spec.Parameters = &runtime.RawExtension{Raw: []byte(tt.params)}
			}
			_, err := rp.ToPolicy()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("ToPolicy = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
