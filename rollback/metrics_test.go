package rollback

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
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
