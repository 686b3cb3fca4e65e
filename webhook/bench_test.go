package webhook

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// threeContainers is a Deployment with three containers, none probed.
func threeContainers(t testing.TB) []byte {
	t.Helper()
	return []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"team","labels":{"app":"web"}},
"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":"25%"}},
"revisionHistoryLimit":10,"progressDeadlineSeconds":600,"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[
{"name":"web","image":"nginx:1.9.1","ports":[{"containerPort":80}]},
{"name":"sidecar","image":"busybox:1.36","ports":[{"name":"metrics","containerPort":9100}]},
{"name":"cache","image":"redis:7.2","ports":[{"containerPort":6379}]}]}}}}`)
}

// percentiles runs fn b.N times and reports p50 and p99 latencies, since the
// goals are stated as percentiles, not means.
func percentiles(b *testing.B, fn func()) {
	b.Helper()
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		fn()
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(durations[len(durations)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkMutatingHandler(b *testing.B) {
	h := newHandlers(b)
	body := review(b, admissionv1.Create, deploymentGVK, threeContainers(b), nil)
	percentiles(b, func() {
		if resp, _ := serve(b, h.mutating, body); resp == nil || len(resp.Patch) == 0 {
			b.Fatal("no patch")
		}
	})
}

func BenchmarkValidatingHandler(b *testing.B) {
	h := newHandlers(b)
	body := review(b, admissionv1.Create, deploymentGVK, threeContainers(b), nil)
	percentiles(b, func() {
		if resp, _ := serve(b, h.validating, body); resp == nil {
			b.Fatal("no response")
		}
	})
}

func BenchmarkValidatingHandler50RolloutPolicies(b *testing.B) {
	h := newHandlers(b)
	var custom []*v1alpha1.RolloutPolicy
	for i := range 50 {
		name := fmt.Sprintf("team-%d", i)
		custom = append(custom, &v1alpha1.RolloutPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: v1alpha1.RolloutPolicySpec{
				Enforcement: "warn",
				Parameters:  &runtime.RawExtension{Raw: []byte(fmt.Sprintf(`{"label":"team-%d"}`, i))},
				Rego: fmt.Sprintf(`package rollout_guard.team_%d

deny contains msg if {
	some c in input.object.spec.template.spec.containers
	endswith(c.image, ":latest")
	msg := sprintf("%%s: no latest (%%s)", [c.name, input.parameters.label])
}

deny contains "replicas above 100" if input.object.spec.replicas > 100
`, i),
			},
		})
	}
	if err := h.set.Replace(context.Background(), custom); err != nil {
		b.Fatal(err)
	}
	body := review(b, admissionv1.Create, deploymentGVK, threeContainers(b), nil)
	percentiles(b, func() {
		if resp, _ := serve(b, h.validating, body); resp == nil {
			b.Fatal("no response")
		}
	})
}
