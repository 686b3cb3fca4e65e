package v1alpha1

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kube-openapi/pkg/validation/spec"
	"k8s.io/kube-openapi/pkg/validation/strfmt"
	"k8s.io/kube-openapi/pkg/validation/validate"
	kjson "sigs.k8s.io/json"
)

// validateParameters checks params against the policy's parameterSchema with kube-openapi's OpenAPI v3 validator
// (the one the API server validates custom resources with, without its CEL and feature-gate machinery), and refuses
// keys an object schema does not declare. Without a schema nothing is checked.
func (rp *RolloutPolicy) validateParameters(params map[string]any) error {
	if rp.Spec.ParameterSchema == nil || len(rp.Spec.ParameterSchema.Raw) == 0 {
		return nil
	}
	var external apiextensionsv1.JSONSchemaProps
	strict, err := kjson.UnmarshalStrict(rp.Spec.ParameterSchema.Raw, &external)
	if err != nil {
		return fmt.Errorf("RolloutPolicy %s: spec.parameterSchema is not an OpenAPI v3 schema: %w", rp.Name, err)
	}
	if len(strict) > 0 {
		return fmt.Errorf("RolloutPolicy %s: spec.parameterSchema: %v", rp.Name, strict[0])
	}
	// The strict decode above checked the schema's shape; the validator reads the same JSON as an OpenAPI schema.
	var openapi spec.Schema
	if err := json.Unmarshal(rp.Spec.ParameterSchema.Raw, &openapi); err != nil {
		return fmt.Errorf("RolloutPolicy %s: spec.parameterSchema: %w", rp.Name, err)
	}
	path := field.NewPath("spec", "parameters")
	var value any = params
	if params == nil {
		value = map[string]any{}
	}
	var problems []string
	for _, e := range validate.NewSchemaValidator(&openapi, nil, path.String(), strfmt.Default).Validate(value).Errors {
		problems = append(problems, e.Error())
	}
	for _, e := range undeclared(path, value, &external) {
		problems = append(problems, e.Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("RolloutPolicy %s: the parameters do not match spec.parameterSchema: %s", rp.Name, strings.Join(problems, "; "))
	}
	return nil
}

// undeclared lists the keys of value that schema's object nodes do not declare, where they declare properties and
// allow nothing else: CRD validation would prune such keys silently, which for a policy means a rule turned off.
func undeclared(path *field.Path, value any, schema *apiextensionsv1.JSONSchemaProps) field.ErrorList {
	var errs field.ErrorList
	switch v := value.(type) {
	case map[string]any:
		open := schema.AdditionalProperties != nil || (schema.XPreserveUnknownFields != nil && *schema.XPreserveUnknownFields)
		declared := make([]string, 0, len(schema.Properties))
		for k := range schema.Properties {
			declared = append(declared, k)
		}
		sort.Strings(declared)
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if sub, ok := schema.Properties[k]; ok {
				errs = append(errs, undeclared(path.Child(k), v[k], &sub)...)
				continue
			}
			if ap := schema.AdditionalProperties; ap != nil && ap.Schema != nil {
				errs = append(errs, undeclared(path.Child(k), v[k], ap.Schema)...)
				continue
			}
			if !open && (len(schema.Properties) > 0 || schema.Type == "object") {
				errs = append(errs, field.NotSupported(path.Child(k), k, declared))
			}
		}
	case []any:
		if schema.Items != nil && schema.Items.Schema != nil {
			for i, item := range v {
				errs = append(errs, undeclared(path.Index(i), item, schema.Items.Schema)...)
			}
		}
	}
	return errs
}
