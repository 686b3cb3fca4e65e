package rollback

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// A workload is in one state at a time, leaves the gauge when cleared, and the gauge never holds more than its
// bound: a cluster-wide incident must not turn it into thousands of series.
func TestWorkloadStatesAreBounded(t *testing.T) {
	w := newWorkloadStates(3)
	w.Set("Deployment", "shop", "web", stateStalled)
	w.Set("Deployment", "shop", "web", stateRolledBack)
	if got := testutil.CollectAndCount(w.gauge); got != 1 {
		t.Fatalf("%d series for one workload, want 1", got)
	}
	if v := testutil.ToFloat64(w.gauge.WithLabelValues("Deployment", "shop", "web", stateRolledBack)); v != 1 {
		t.Fatalf("rolled_back = %v", v)
	}
	for i := range 5 {
		w.Set("StatefulSet", "db", fmt.Sprint("db-", i), stateStalled)
	}
	if got := testutil.CollectAndCount(w.gauge); got != 3 {
		t.Fatalf("%d series, want the bound of 3", got)
	}
	w.Clear("Deployment", "shop", "web")
	w.Clear("Deployment", "shop", "never-set")
	if got := testutil.CollectAndCount(w.gauge); got != 2 {
		t.Fatalf("%d series after a clear, want 2", got)
	}
	w.Set("DaemonSet", "ops", "agent", stateStalled) // room again
	if got := testutil.CollectAndCount(w.gauge); got != 3 {
		t.Fatalf("%d series, want 3", got)
	}
}

// The reconciler drives the gauge: an undo sets rolled_back, a skip or report sets stalled, and the current
// revision marked known-good clears the workload.
func TestWorkloadStateFollowsActions(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(deploy("3", deadlineExceeded), rs("2", "bbb", "nginx:1.9.1", good), rs("3", "ccc", "nginx:1.161")).Build()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r := NewReconciler(c, c, defaultRollbackConfig(), events.NewFakeRecorder(10), m, nil, func() time.Time { return now })
	snapshot := func() Snapshot {
		var d appsv1.Deployment
		var sets appsv1.ReplicaSetList
		if err := c.Get(ctx, client.ObjectKey{Namespace: "team", Name: "web"}, &d); err != nil {
			t.Fatal(err)
		}
		if err := c.List(ctx, &sets); err != nil {
			t.Fatal(err)
		}
		s := Snapshot{Deployment: &d, Now: now}
		for i := range sets.Items {
			s.ReplicaSets = append(s.ReplicaSets, &sets.Items[i])
		}
		return s
	}
	state := func(s string) float64 {
		return testutil.ToFloat64(m.workloads.gauge.WithLabelValues("Deployment", "team", "web", s))
	}
	s := snapshot()
	if dec := Decide(s, settings); dec.Action != ActionRollback {
		t.Fatalf("decision %s, want a rollback", dec.Action)
	} else if err := r.act(ctx, s, dec); err != nil {
		t.Fatal(err)
	}
	if state(stateRolledBack) != 1 {
		t.Fatal("no rolled_back series after the undo")
	}
	s = snapshot()
	if err := r.act(ctx, s, Decision{Action: ActionSkip, Cause: CauseImagePull, Subject: s.ReplicaSets[0], Key: "k", Detail: "skipped"}); err != nil {
		t.Fatal(err)
	}
	if state(stateStalled) != 1 || testutil.CollectAndCount(m.workloads.gauge) != 1 {
		t.Fatal("a skip did not replace rolled_back with stalled")
	}
	s = snapshot()
	var current *appsv1.ReplicaSet
	for _, set := range s.ReplicaSets {
		if revisionOf(set) == s.Deployment.Annotations[revisionAnnotation] {
			current = set
		}
	}
	if err := r.act(ctx, s, Decision{Action: ActionMarkGood, Subject: current}); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.workloads.gauge); n != 0 {
		t.Fatalf("%d series after the current revision was marked known-good, want 0", n)
	}
}
