package webhook

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

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

// benchServe serves body b.N times, with the chart's GC setting, and reports p50 and p99 of ServeHTTP,
// since the goals are stated as percentiles of the handler: decoding the
// review, deciding, encoding the answer. Building the HTTP request and
// reading the answer are the client's work and are not timed; the first
// answer is checked in full, the rest by status.
func benchServe(b *testing.B, h http.Handler, body []byte, check func(*admissionv1.AdmissionResponse) bool) {
	b.Helper()
	chartGC(b)
	if resp, code := serve(b, h, body); resp == nil || !check(resp) {
		b.Fatalf("unexpected answer (HTTP %d): %+v", code, resp)
	}
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		req, rec := reviewRequest(body)
		b.StartTimer()
		start := time.Now()
		h.ServeHTTP(rec, req)
		durations = append(durations, time.Since(start))
		if rec.Code != http.StatusOK {
			b.Fatalf("HTTP %d", rec.Code)
		}
	}
	b.StopTimer()
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(durations[len(durations)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkMutatingHandler(b *testing.B) {
	h := newHandlers(b)
	body := review(b, admissionv1.Create, deploymentGVK, threeContainers(b), nil)
	benchServe(b, h.mutating, body, func(r *admissionv1.AdmissionResponse) bool { return len(r.Patch) > 0 })
}

// mutated is threeContainers as the API server sends it to the validating
// webhook: after rollout-guard's mutation (probes and rollout fields added).
func mutated(b *testing.B, h handlers) []byte {
	b.Helper()
	obj := threeContainers(b)
	resp, _ := serve(b, h.mutating, review(b, admissionv1.Create, deploymentGVK, obj, nil))
	if resp == nil || len(resp.Patch) == 0 {
		b.Fatal("the mutating handler made no patch")
	}
	patch, err := jsonpatch.DecodePatch(resp.Patch)
	if err != nil {
		b.Fatal(err)
	}
	out, err := patch.Apply(obj)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkValidatingHandler: the common case, a mutated Deployment admitted.
func BenchmarkValidatingHandler(b *testing.B) {
	h := newHandlers(b)
	body := review(b, admissionv1.Create, deploymentGVK, mutated(b, h), nil)
	benchServe(b, h.validating, body, func(r *admissionv1.AdmissionResponse) bool { return r.Allowed })
}

// BenchmarkValidatingHandlerDenied: three containers without probes (as if
// mutation were off), so three denials are described in the answer.
func BenchmarkValidatingHandlerDenied(b *testing.B) {
	h := newHandlers(b)
	body := review(b, admissionv1.Create, deploymentGVK, threeContainers(b), nil)
	benchServe(b, h.validating, body, func(r *admissionv1.AdmissionResponse) bool {
		return !r.Allowed && r.Result != nil && strings.Count(r.Result.Message, "readinessProbe") >= 3
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
	body := review(b, admissionv1.Create, deploymentGVK, mutated(b, h), nil)
	benchServe(b, h.validating, body, func(r *admissionv1.AdmissionResponse) bool { return r.Allowed })
}

// chartGC runs the benchmark with the GOGC the chart gives the webhook
// (webhook.gogc), so that the percentiles include the collector as it runs
// in production. GOGC in the environment wins, to measure other settings.
func chartGC(b *testing.B) {
	b.Helper()
	if os.Getenv("GOGC") != "" {
		return
	}
	raw, err := os.ReadFile("../charts/rollout-guard/values.yaml")
	if err != nil {
		b.Fatal(err)
	}
	var values struct {
		Webhook struct {
			GOGC *int `json:"gogc"`
		} `json:"webhook"`
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		b.Fatal(err)
	}
	if values.Webhook.GOGC == nil {
		b.Fatal("the chart sets no webhook.gogc")
	}
	old := debug.SetGCPercent(*values.Webhook.GOGC)
	b.Cleanup(func() { debug.SetGCPercent(old) })
}
