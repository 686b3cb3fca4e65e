package policies

import (
	"encoding/json"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// rolloutFacts is input.rollout for a Deployment with a RollingUpdate
// strategy: replicas, and maxSurge and maxUnavailable in pods, resolved by
// the same function the Deployment controller uses (surge rounds up,
// unavailable rounds down). Resolving them here rather than in Rego is both
// exact and cheap: OPA's arithmetic on percentages took most of the time of
// the surge-unavailable policy. Other objects get no facts (nil).
func rolloutFacts(object map[string]any) map[string]any {
	if object["kind"] != "Deployment" {
		return nil
	}
	spec, _ := object["spec"].(map[string]any)
	strategy, _ := spec["strategy"].(map[string]any)
	if t, set := strategy["type"]; set && t != "RollingUpdate" {
		return nil
	}
	replicas := 1
	if r, ok := whole(spec["replicas"]); ok {
		replicas = r
	}
	rolling, _ := strategy["rollingUpdate"].(map[string]any)
	facts := map[string]any{"replicas": replicas}
	for _, f := range []struct {
		name    string
		roundUp bool
	}{{"maxSurge", true}, {"maxUnavailable", false}} {
		v := intstr.FromString("25%")
		if n, ok := whole(rolling[f.name]); ok {
			v = intstr.FromInt(n)
		} else if s, ok := rolling[f.name].(string); ok {
			v = intstr.FromString(s)
		} else if rolling[f.name] != nil {
			continue // a wrong type: the API server rejects it, and no fact is better than a wrong one
		}
		if pods, err := intstr.GetScaledValueFromIntOrPercent(&v, replicas, f.roundUp); err == nil {
			facts[f.name] = pods
		}
	}
	return facts
}

// whole reads a JSON number as an int, whichever decoder produced it.
func whole(v any) (int, bool) {
	switch n := v.(type) {
	case float64:
		return int(n), n == float64(int(n))
	case int:
		return n, true
	case int64:
		return int(n), true
	case json.Number:
		i, err := n.Int64()
		return int(i), err == nil
	}
	return 0, false
}
