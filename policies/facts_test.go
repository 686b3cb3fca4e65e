package policies

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestRolloutFacts(t *testing.T) {
	tests := []struct {
		name   string
		object string
		want   map[string]any
	}{
		{"API defaults: 1 replica, 25% and 25%", `{"kind":"Deployment","spec":{}}`,
			map[string]any{"replicas": 1, "maxSurge": 1, "maxUnavailable": 0}},
		{"surge rounds up, unavailable rounds down", `{"kind":"Deployment","spec":{"replicas":10,"strategy":{"rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"}}}}`,
			map[string]any{"replicas": 10, "maxSurge": 3, "maxUnavailable": 2}},
		{"30% of 3 is 0.9: no pod down", `{"kind":"Deployment","spec":{"replicas":3,"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1,"maxUnavailable":"30%"}}}}`,
			map[string]any{"replicas": 3, "maxSurge": 1, "maxUnavailable": 0}},
		{"the seeds' 50%/50% at 10", `{"kind":"Deployment","spec":{"replicas":10,"strategy":{"rollingUpdate":{"maxSurge":"50%","maxUnavailable":"50%"}}}}`,
			map[string]any{"replicas": 10, "maxSurge": 5, "maxUnavailable": 5}},
		{"scaled to zero", `{"kind":"Deployment","spec":{"replicas":0,"strategy":{"rollingUpdate":{"maxUnavailable":2}}}}`,
			map[string]any{"replicas": 0, "maxSurge": 0, "maxUnavailable": 2}},
		{"a malformed value gives no fact for it", `{"kind":"Deployment","spec":{"replicas":4,"strategy":{"rollingUpdate":{"maxSurge":"lots","maxUnavailable":true}}}}`,
			map[string]any{"replicas": 4}},
		{"Recreate has no rollout facts", `{"kind":"Deployment","spec":{"replicas":4,"strategy":{"type":"Recreate"}}}`, nil},
		{"nor has a StatefulSet", `{"kind":"StatefulSet","spec":{"replicas":4}}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var object map[string]any
			if err := json.Unmarshal([]byte(tt.object), &object); err != nil {
				t.Fatal(err)
			}
			if got := rolloutFacts(object); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rolloutFacts = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWholeNumbersFromAnyDecoder(t *testing.T) {
	for _, v := range []any{float64(3), 3, int64(3), json.Number("3")} {
		if n, ok := whole(v); !ok || n != 3 {
			t.Errorf("whole(%#v) = %d, %v", v, n, ok)
		}
	}
	for _, v := range []any{2.5, "3", json.Number("3.5"), nil} {
		if _, ok := whole(v); ok {
			t.Errorf("whole(%#v) accepted", v)
		}
	}
}
