package config

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The chart's values.schema.json is what stops a wrong value at `helm install`, before pods crash-loop on a
// config rollout-guard refuses while failurePolicy Ignore leaves the cluster unguarded. So every object in it is
// closed, and its config section has exactly the fields of Options, typed as Options types them.
func TestChartSchemaMatchesOptions(t *testing.T) {
	raw, err := os.ReadFile("../charts/rollout-guard/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(raw, &root); err != nil {
		t.Fatalf("values.schema.json: %v", err)
	}
	s := schemaWalker{t: t, defs: asMap(root["definitions"])}

	// Objects whose keys are not the chart's to know: Kubernetes types passed through, and policy parameters.
	freeForm := []string{"/imagePullSecrets/items", "/webhook/resources", "/watcher/resources", "/config/policies/builtIns/*/parameters"}
	seen := map[string]bool{}
	s.closed("", root, freeForm, seen)
	for _, p := range freeForm {
		if !seen[p] {
			s.t.Errorf("free-form path %s is not in the schema any more", p)
		}
	}

	config := asMap(asMap(root["properties"])["config"])
	// The chart writes these itself, from other values (watcher.mode, watcher.selector) or its own layout.
	setByChart := map[string]bool{"rollback.mode": true, "rollback.selector": true}
	ot := reflect.TypeOf(Options{})
	for _, name := range []string{"Mutation", "Policies", "Rollback"} {
		f, _ := ot.FieldByName(name)
		s.matches(jsonName(f), f.Type, asMap(asMap(config["properties"])[jsonName(f)]), setByChart)
	}
	var exposed []string
	for k := range asMap(config["properties"]) {
		exposed = append(exposed, k)
	}
	sort.Strings(exposed)
	if !slices.Equal(exposed, []string{"mutation", "policies", "rollback"}) {
		t.Errorf("config exposes %v, want mutation, policies and rollback (the rest the chart sets itself)", exposed)
	}
}

type schemaWalker struct {
	t    *testing.T
	defs map[string]any
}

func (s schemaWalker) resolve(node map[string]any) map[string]any {
	if ref, ok := node["$ref"].(string); ok {
		return asMap(s.defs[strings.TrimPrefix(ref, "#/definitions/")])
	}
	return node
}

// closed checks that every object node below path names its properties and refuses others.
func (s schemaWalker) closed(path string, node map[string]any, freeForm []string, seen map[string]bool) {
	node = s.resolve(node)
	seen[path] = true
	if node["type"] == "object" && !slices.Contains(freeForm, path) {
		if _, ok := node["additionalProperties"]; !ok {
			s.t.Errorf("schema object %s is open: give it additionalProperties (false, or a schema for its values)", path)
		}
	}
	for k, v := range asMap(node["properties"]) {
		s.closed(path+"/"+k, asMap(v), freeForm, seen)
	}
	if ap, ok := node["additionalProperties"].(map[string]any); ok {
		s.closed(path+"/*", ap, freeForm, seen)
	}
	if items, ok := node["items"].(map[string]any); ok {
		s.closed(path+"/items", items, freeForm, seen)
	}
}

// matches checks that node describes values of type typ, at path (dotted, from config).
func (s schemaWalker) matches(path string, typ reflect.Type, node map[string]any, setByChart map[string]bool) {
	if node == nil {
		s.t.Errorf("schema has no config.%s", path)
		return
	}
	node = s.resolve(node)
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ {
	case reflect.TypeOf(metav1.Duration{}):
		if node["type"] != "string" || node["pattern"] == nil {
			s.t.Errorf("config.%s is a duration: want a string with a pattern, got %v", path, node)
		}
		return
	case reflect.TypeOf(intstr.IntOrString{}):
		if node["anyOf"] == nil {
			s.t.Errorf("config.%s is an integer or a percentage: want anyOf, got %v", path, node)
		}
		return
	}
	want := map[reflect.Kind]string{reflect.Bool: "boolean", reflect.String: "string", reflect.Int: "integer", reflect.Int32: "integer",
		reflect.Int64: "integer", reflect.Float32: "number", reflect.Float64: "number", reflect.Struct: "object", reflect.Map: "object", reflect.Slice: "array"}
	if typ.Kind() == reflect.Interface {
		return
	}
	if got := node["type"]; got != want[typ.Kind()] {
		s.t.Errorf("config.%s: schema type %v, Options type %s", path, got, typ)
		return
	}
	switch typ.Kind() {
	case reflect.Struct:
		props := asMap(node["properties"])
		fields := map[string]bool{}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name := jsonName(f)
			if name == "" || setByChart[path+"."+name] {
				continue
			}
			fields[name] = true
			s.matches(path+"."+name, f.Type, asMap(props[name]), setByChart)
		}
		for k := range props {
			if !fields[k] {
				s.t.Errorf("schema has config.%s.%s, which Options does not know (or the chart sets itself)", path, k)
			}
		}
	case reflect.Map:
		if typ.Elem().Kind() == reflect.Interface {
			return // free-form, like a policy's parameters
		}
		ap, ok := node["additionalProperties"].(map[string]any)
		if !ok {
			s.t.Errorf("config.%s is a map: want additionalProperties describing its values", path)
			return
		}
		s.matches(path+".*", typ.Elem(), ap, setByChart)
	case reflect.Slice:
		s.matches(path+"[]", typ.Elem(), asMap(node["items"]), setByChart)
	}
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "-" {
		return ""
	}
	return name
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}
