package webhook

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollout-guard/rollout-guard/policies"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// exceptionsFor lists the RolloutPolicyExceptions of a namespace from the cache. An exception that cannot be read
// waives nothing: the violation stands, and the error is logged.
func (v *Validator) exceptionsFor(ctx context.Context, namespace string) []policies.Exception {
	if v.cache == nil {
		return nil
	}
	log := logf.FromContext(ctx)
	// bounded: a cache that cannot sync (the CRD gone, RBAC broken) must cost a request a second, not its timeout
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var list v1alpha1.RolloutPolicyExceptionList
	if err := v.cache.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		log.Error(err, "Cannot list RolloutPolicyExceptions; none applies", "namespace", namespace)
		return nil
	}
	out := make([]policies.Exception, 0, len(list.Items))
	for i := range list.Items {
		e, err := list.Items[i].ToException()
		if err != nil {
			log.Error(err, "RolloutPolicyException ignored")
			continue
		}
		out = append(out, e)
	}
	return out
}

// validateException admits a RolloutPolicyException that says what it waives, for whom, why and until when, with
// an expiry in the future and within the configured maximum. RBAC decides who may write one; this decides that
// what they write is an exception and not a standing waiver.
func (v *Validator) validateException(ctx context.Context, req admission.Request) admission.Response {
	var e v1alpha1.RolloutPolicyException
	if err := v.decoder.DecodeRaw(req.Object, &e); err != nil {
		return errored(badRequest("cannot decode the RolloutPolicyException: %v", err))
	}
	var problems, warnings []string
	if len(e.Spec.Policies) == 0 {
		problems = append(problems, "spec.policies is empty: name the policies it waives")
	}
	if strings.TrimSpace(e.Spec.Reason) == "" {
		problems = append(problems, "spec.reason is empty: say why the workloads may break the policies")
	}
	if len(e.Spec.Workloads.Names) == 0 && e.Spec.Workloads.Selector == nil {
		problems = append(problems, "spec.workloads names no workload: set names and/or selector (an exception never covers a namespace by omission)")
	}
	if _, err := e.ToException(); err != nil {
		problems = append(problems, err.Error())
	}
	now, limit := v.now(), v.cfg.MaxExceptionDuration.Duration
	switch {
	case e.Spec.Expires.IsZero():
		problems = append(problems, "spec.expires is required")
	case !now.Before(e.Spec.Expires.Time):
		problems = append(problems, fmt.Sprintf("spec.expires = %s is in the past", e.Spec.Expires.UTC().Format(time.RFC3339)))
	case e.Spec.Expires.Sub(now) > limit:
		problems = append(problems, fmt.Sprintf("spec.expires = %s is more than %s ahead (limit: policies.maxExceptionDuration); set an earlier date and renew it when it ends",
			e.Spec.Expires.UTC().Format(time.RFC3339), limit))
	}
	known := v.set.Names()
	for _, p := range e.Spec.Policies {
		if !slices.Contains(known, p) {
			warnings = append(warnings, fmt.Sprintf("rollout-guard: spec.policies: no policy named %q is in force (known: %s); the exception waives it once one is", p, strings.Join(known, ", ")))
		}
	}
	if len(problems) > 0 {
		return admission.Denied(fmt.Sprintf("rollout-guard: RolloutPolicyException %s/%s:\n- %s", e.Namespace, e.Name, strings.Join(problems, "\n- "))).WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}

// maxRecordedUses bounds an exception's status.uses.
const maxRecordedUses = 20

// exceptionRecorder writes the uses of RolloutPolicyExceptions into their status, one update per exception and
// period.
type exceptionRecorder struct {
	*batcher[types.NamespacedName, pendingUses]
	client client.Client
	// live reads the exception around the cache, so that an update conflicts only with a real concurrent writer.
	live client.Reader
}

type pendingUses struct {
	count int64
	uses  []v1alpha1.ExceptionUse // newest last
}

func newExceptionRecorder(c client.Client, live client.Reader) *exceptionRecorder {
	r := &exceptionRecorder{client: c, live: live}
	r.batcher = newBatcher("Cannot record the uses of a RolloutPolicyException", r.write)
	return r
}

// record queues one use; it never blocks on the API server.
func (r *exceptionRecorder) record(req admission.Request, use policies.ExceptionUse, at time.Time) {
	if r == nil {
		return
	}
	r.add(types.NamespacedName{Namespace: use.Exception.Namespace, Name: use.Exception.Name}, func(p *pendingUses) {
		p.count++
		p.uses = append(p.uses, v1alpha1.ExceptionUse{
			Time: metav1.NewTime(at), Workload: req.Kind.Kind + "/" + req.Name, Operation: string(req.Operation),
			User: req.UserInfo.Username, Policies: use.Policies,
		})
		if len(p.uses) > maxRecordedUses {
			p.uses = p.uses[len(p.uses)-maxRecordedUses:]
		}
	})
}

func (r *exceptionRecorder) write(ctx context.Context, key types.NamespacedName, p *pendingUses) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var e v1alpha1.RolloutPolicyException
		if err := r.live.Get(ctx, key, &e); err != nil {
			return client.IgnoreNotFound(err)
		}
		e.Status = withUses(e.Status, p)
		return r.client.Status().Update(ctx, &e)
	})
}

// withUses adds uses to a status: the count, the last use, and the newest uses first, at most maxRecordedUses.
func withUses(s v1alpha1.RolloutPolicyExceptionStatus, p *pendingUses) v1alpha1.RolloutPolicyExceptionStatus {
	s.UseCount += p.count
	newest := make([]v1alpha1.ExceptionUse, 0, len(p.uses)+len(s.Uses))
	for i := len(p.uses) - 1; i >= 0; i-- {
		newest = append(newest, p.uses[i])
	}
	newest = append(newest, s.Uses...)
	if len(newest) > maxRecordedUses {
		newest = newest[:maxRecordedUses]
	}
	s.Uses = newest
	if len(newest) > 0 {
		last := newest[0].Time
		s.LastUsed = &last
	}
	return s
}
