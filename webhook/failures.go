package webhook

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// conditionEvaluating is the RolloutPolicy condition that says whether the policy evaluates on the requests it
// judges: False while requests fail (an error, its deadline) and its onError verdict stands in for it.
const conditionEvaluating = "Evaluating"

// failureRecorder writes evaluation failures of RolloutPolicies into their Evaluating condition, one update per
// policy and period. Built-in policies have no object: their failures are the metric and the log.
type failureRecorder struct {
	*batcher[string, pendingFailures]
	client client.Client
	live   client.Reader
}

type pendingFailures struct {
	count       int
	first, last time.Time
	message     string
}

func newFailureRecorder(c client.Client, live client.Reader) *failureRecorder {
	r := &failureRecorder{client: c, live: live}
	r.batcher = newBatcher("Cannot record the evaluation failures of a RolloutPolicy", r.write)
	return r
}

func (r *failureRecorder) record(policy, message string, at time.Time) {
	if r == nil {
		return
	}
	r.add(policy, func(p *pendingFailures) {
		if p.count == 0 {
			p.first = at
		}
		p.count++
		p.last, p.message = at, message
	})
}

func (r *failureRecorder) write(ctx context.Context, name string, p *pendingFailures) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var rp v1alpha1.RolloutPolicy
		if err := r.live.Get(ctx, types.NamespacedName{Name: name}, &rp); err != nil {
			return client.IgnoreNotFound(err) // a built-in, or deleted since
		}
		meta.SetStatusCondition(&rp.Status.Conditions, metav1.Condition{
			Type: conditionEvaluating, Status: metav1.ConditionFalse, Reason: "EvaluationFailed", ObservedGeneration: rp.Generation,
			Message: fmt.Sprintf("%d requests between %s and %s could not be evaluated, and the policy's onError verdict stood in; the last error: %s",
				p.count, p.first.UTC().Format(time.RFC3339), p.last.UTC().Format(time.RFC3339), p.message),
		})
		return r.client.Status().Update(ctx, &rp)
	})
}
