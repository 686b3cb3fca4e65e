package policies

import (
	"context"
	"slices"
	"testing"
	"time"
)

const benchDeployment = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"team","labels":{"app":"web"}},
"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%","maxUnavailable":0}},
"revisionHistoryLimit":5,"progressDeadlineSeconds":120,"minReadySeconds":5,"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[
{"name":"web","image":"nginx:1.9.1","ports":[{"containerPort":80}],"readinessProbe":{"tcpSocket":{"port":80}}},
{"name":"sidecar","image":"busybox:1.36","ports":[{"name":"metrics","containerPort":9100}],"readinessProbe":{"tcpSocket":{"port":"metrics"}}},
{"name":"cache","image":"redis:7.2","ports":[{"containerPort":6379}],"readinessProbe":{"tcpSocket":{"port":6379}}}]}}}}`

// BenchmarkEvaluateBuiltIns: every built-in policy on one (mutated) Deployment review.
func BenchmarkEvaluateBuiltIns(b *testing.B) {
	in, kind := objectInput(b, []byte(benchDeployment))
	benchEvaluate(b, builtins(b), in, kind)
}

// BenchmarkEachBuiltIn: each built-in alone on the same review, and an empty
// policy for the fixed cost of an evaluation, to see where time goes.
func BenchmarkEachBuiltIn(b *testing.B) {
	all := builtinPolicies(b)
	in, kind := objectInput(b, []byte(benchDeployment))
	empty := Policy{Name: "empty", Filename: "empty.rego", Module: "package rollout_guard.empty\n\ndeny contains 1 if false\n", Settings: all[0].Settings}
	for _, p := range append(all, empty) {
		b.Run(p.Name, func(b *testing.B) {
			e, err := New(context.Background(), []Policy{p}, time.Second)
			if err != nil {
				b.Fatal(err)
			}
			benchEvaluate(b, e, in, kind)
		})
	}
}

// benchEvaluate evaluates in b.N times and reports p50 and p99, since the
// goals are stated as percentiles, not means.
func benchEvaluate(b *testing.B, e *Evaluator, in map[string]any, kind string) {
	b.Helper()
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := e.Evaluate(context.Background(), in, kind); err != nil {
			b.Fatal(err)
		}
		durations = append(durations, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(durations[len(durations)*99/100].Microseconds()), "p99-µs")
}
