package webhook

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// policyReloader keeps the PolicySet in step with the RolloutPolicies in the
// cluster. Every change rebuilds the whole set; a RolloutPolicy whose current
// spec does not compile keeps its last good version in force.
type policyReloader struct {
	client   client.Client
	set      *PolicySet
	lastGood map[string]*v1alpha1.RolloutPolicy // by name; only touched by the single reconcile worker
}

// everything is the one request every RolloutPolicy event maps to.
var everything = reconcile.Request{NamespacedName: types.NamespacedName{Name: "all-rollout-policies"}}

func (r *policyReloader) setup(mgr manager.Manager) error {
	return ctrl.ControllerManagedBy(mgr).
		Named("rolloutpolicies").
		Watches(&v1alpha1.RolloutPolicy{}, handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
			return []reconcile.Request{everything}
		})).
		Complete(r)
}

// NeedLeaderElection: every webhook replica enforces policies, so each keeps its own set.
func (r *policyReloader) NeedLeaderElection() bool { return false }

func (r *policyReloader) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	log := logf.FromContext(ctx)
	var list v1alpha1.RolloutPolicyList
	if err := r.client.List(ctx, &list); err != nil {
		return reconcile.Result{}, fmt.Errorf("list RolloutPolicies: %w", err)
	}
	// Each policy alone first: one that does not compile keeps its last good generation.
	seen := map[string]bool{}
	conds := map[string]metav1.Condition{}
	for i := range list.Items {
		rp := &list.Items[i]
		seen[rp.Name] = true
		if err := CheckRolloutPolicy(ctx, rp); err != nil {
			cond := metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse, Reason: "CompileError", Message: err.Error()}
			if prev, ok := r.lastGood[rp.Name]; ok {
				cond.Message += fmt.Sprintf(" (generation %d stays enforced)", prev.Generation)
			}
			conds[rp.Name] = cond
			log.Error(err, "RolloutPolicy does not compile", "rolloutPolicy", rp.Name)
		} else {
			r.lastGood[rp.Name] = rp.DeepCopy()
		}
	}
	for name := range r.lastGood {
		if !seen[name] {
			delete(r.lastGood, name)
		}
	}
	names := make([]string, 0, len(r.lastGood))
	for n := range r.lastGood {
		names = append(names, n)
	}
	sort.Strings(names)
	enforced := make([]*v1alpha1.RolloutPolicy, 0, len(names))
	for _, n := range names {
		enforced = append(enforced, r.lastGood[n])
	}
	if err := r.set.Replace(ctx, enforced); err != nil {
		// Together they conflict (admitted while the webhook was down, or before admission checked the set): keep,
		// in name order, every policy that compiles with those kept before it, and say which were left out.
		log.Error(err, "RolloutPolicies conflict; enforcing the ones that compile together")
		kept := make([]*v1alpha1.RolloutPolicy, 0, len(enforced))
		for _, rp := range enforced {
			if err := r.set.Replace(ctx, append(slices.Clone(kept), rp)); err != nil {
				conds[rp.Name] = metav1.Condition{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Conflict",
					Message: fmt.Sprintf("the policy compiles alone but not with the others in force, so it is not enforced: %v", err)}
				continue
			}
			kept = append(kept, rp)
		}
		if err := r.set.Replace(ctx, kept); err != nil {
			return reconcile.Result{}, fmt.Errorf("rebuild policy set: %w", err)
		}
		enforced = kept
	}
	// Ready=True means enforced: the set in force holds this generation.
	for i := range list.Items {
		rp := &list.Items[i]
		cond, failed := conds[rp.Name]
		if !failed {
			cond = metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Compiled", Message: "the policy compiled and is enforced"}
		}
		cond.ObservedGeneration = rp.Generation
		conds := []metav1.Condition{cond}
		// a new generation starts with a clean record; failures of this one are written as requests see them
		if prev := meta.FindStatusCondition(rp.Status.Conditions, conditionEvaluating); prev == nil || prev.ObservedGeneration != rp.Generation {
			conds = append(conds, metav1.Condition{Type: conditionEvaluating, Status: metav1.ConditionTrue, Reason: "NoFailures",
				ObservedGeneration: rp.Generation, Message: "no request has failed to evaluate since this generation was loaded"})
		}
		if err := r.setStatus(ctx, rp, conds...); err != nil {
			return reconcile.Result{}, err
		}
	}
	log.Info("Policy set rebuilt", "rolloutPolicies", len(enforced))
	return reconcile.Result{}, nil
}

func (r *policyReloader) setStatus(ctx context.Context, rp *v1alpha1.RolloutPolicy, conds ...metav1.Condition) error {
	updated := rp.DeepCopy()
	for _, cond := range conds {
		meta.SetStatusCondition(&updated.Status.Conditions, cond)
	}
	updated.Status.ObservedGeneration = rp.Generation
	if equality.Semantic.DeepEqual(updated.Status, rp.Status) {
		return nil
	}
	if err := r.client.Status().Update(ctx, updated); err != nil {
		return fmt.Errorf("update status of RolloutPolicy %s: %w", rp.Name, err)
	}
	return nil
}
