package audit

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/rollout-guard/rollout-guard/config"
)

// BenchmarkRun2000 is one audit of 2,000 Deployments in 20 namespaces with the built-in policies, from a fake
// client: the CPU of judging, without the API server's share (the scale test measures the whole, on kwok).
func BenchmarkRun2000(b *testing.B) {
	scheme := testScheme(b)
	var objs []client.Object
	for i := range 20 {
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("ns-%d", i)}})
	}
	for i := range 2000 {
		objs = append(objs, deployment(fmt.Sprintf("ns-%d", i/100), fmt.Sprintf("app-%d", i), nil))
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).Build()
	opts := config.Default()
	b.ReportAllocs()
	for b.Loop() {
		res, err := Run(context.Background(), c, opts, "", Pace{})
		if err != nil || len(res.Findings) != 2000 {
			b.Fatalf("%d findings, %v", len(res.Findings), err)
		}
	}
}
