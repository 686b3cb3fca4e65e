package rollback

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/rollout-guard/rollout-guard/analysis"
	"github.com/rollout-guard/rollout-guard/config"
)

// Event reasons on the Deployment.
const (
	ReasonRolledBack      = "RolloutGuardRolledBack"
	ReasonStallDetected   = "RolloutGuardStallDetected"
	ReasonRollbackSkipped = "RolloutGuardRollbackSkipped"
	// ReasonRollbackFailed: the undo was sent and refused (a webhook, a quota, RBAC); retried with backoff.
	ReasonRollbackFailed = "RolloutGuardRollbackFailed"
)

// ownerIndex indexes ReplicaSets and Pods by the UID of their controller.
const ownerIndex = ".metadata.controllerUID"

// Reconciler rolls back stalled Deployments.
type Reconciler struct {
	actor
	opts    config.Rollback
	breaker *Breaker
}

// actor is what both reconcilers act with: the cached client, a reader
// around the cache, Events, metrics and the clock.
type actor struct {
	client client.Client
	// live reads around the cache: what the cache trims (the undo's target
	// template), and what must be current (the workload before its undo).
	live     client.Reader
	recorder events.EventRecorder
	metrics  *Metrics
	// analyzer runs the RolloutAnalyses of new revisions.
	analyzer *Analyzer
	now      func() time.Time
}

// NewReconciler builds the reconciler.
func NewReconciler(c client.Client, live client.Reader, opts config.Rollback, recorder events.EventRecorder, metrics *Metrics, analyzer *Analyzer, now func() time.Time) *Reconciler {
	return &Reconciler{
		actor: actor{client: c, live: live, recorder: recorder, metrics: metrics, analyzer: analyzer, now: now}, opts: opts,
		breaker: NewBreaker(opts.CircuitBreaker.MaxStalls, opts.CircuitBreaker.MinNamespaces, opts.CircuitBreaker.Window.Duration),
	}
}

// SetupWithManager registers the controller, its watches and indexes.
func (r *Reconciler) SetupWithManager(mgr manager.Manager) error {
	for _, obj := range []client.Object{&appsv1.ReplicaSet{}, &corev1.Pod{}, &appsv1.ControllerRevision{}} {
		if err := mgr.GetFieldIndexer().IndexField(context.Background(), obj, ownerIndex, controllerUID); err != nil {
			return fmt.Errorf("index %T by owner: %w", obj, err)
		}
	}
	return ctrl.ControllerManagedBy(mgr).
		Named("rollback").
		For(&appsv1.Deployment{}).
		Owns(&appsv1.ReplicaSet{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.podToDeployment)).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.opts.Workers}).
		Complete(r)
}

func controllerUID(obj client.Object) []string {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		return []string{string(ref.UID)}
	}
	return nil
}

// podToDeployment maps a pod to the Deployment owning its ReplicaSet.
func (r *Reconciler) podToDeployment(ctx context.Context, obj client.Object) []reconcile.Request {
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.Kind != "ReplicaSet" {
		return nil
	}
	var rs appsv1.ReplicaSet
	if err := r.client.Get(ctx, client.ObjectKey{Namespace: obj.GetNamespace(), Name: ref.Name}, &rs); err != nil {
		return nil
	}
	owner := metav1.GetControllerOf(&rs)
	if owner == nil || owner.Kind != "Deployment" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: owner.Name}}}
}

// Reconcile observes one Deployment, decides, and acts.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := logf.FromContext(ctx)
	snap, err := r.observe(ctx, req.NamespacedName)
	if apierrors.IsNotFound(err) {
		r.metrics.workloads.Clear("Deployment", req.Namespace, req.Name)
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	snap.Analysis = r.analyse(ctx, snap.Deployment, deploymentRevision(snap))
	set := ResolveSettings(r.opts, snap.Deployment)
	dec := Decide(snap, set)
	if why, paused := r.breaker.Pause(req.String(), req.Namespace, snap.Now, dec.Action, dec.Stall, r.metrics); paused {
		dec = Decision{
			Action: ActionSkip, Cause: dec.Cause, Subject: dec.Subject, Detail: why, RequeueAfter: r.breaker.window,
			Key: fmt.Sprintf("%s/%s/%s/breaker", snap.Deployment.Annotations[revisionAnnotation], ActionSkip, dec.Cause),
		}
		if lastAction(snap.Deployment).Key == dec.Key {
			return reconcile.Result{RequeueAfter: dec.RequeueAfter}, nil
		}
	}
	if dec.Action != ActionNone {
		log.Info("Acting on Deployment", "deployment", klog.KObj(snap.Deployment), "action", dec.Action, "cause", dec.Cause, "detail", dec.Detail)
	}
	if err := r.act(ctx, snap, dec); err != nil {
		if apierrors.IsConflict(err) {
			// The Deployment changed under us: observe again rather than act on stale state.
			log.V(1).Info("Conflict; observing again", "deployment", klog.KObj(snap.Deployment))
			return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
		}
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: dec.RequeueAfter}, nil
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// deploymentRevision is what the analyzer needs of a Deployment's new revision; nil when there is nothing to
// analyse: the Deployment is not settled, or its new revision is already known-good or was rolled back.
func deploymentRevision(s Snapshot) *Revision {
	d := s.Deployment
	current := newReplicaSet(s)
	if current == nil || d.DeletionTimestamp != nil || d.Spec.Paused || d.Status.ObservedGeneration != d.Generation ||
		current.Annotations[AnnotationKnownGood] != "" || rolledBackOnce(current.Annotations, d.Generation) {
		return nil
	}
	rev := &Revision{Kind: "Deployment", Hash: hashOf(current), Number: revisionOf(current),
		Pods: analysis.RevisionPods(current.Name), Complete: fullyAvailable(d, current)}
	// A relative threshold compares with the stable revision while some of its pods still run; its pods already
	// gone still match, so their requests inside a rate() window count.
	if stable := knownGoodTarget(s, current); stable != nil && slices.ContainsFunc(s.Pods, func(p *corev1.Pod) bool {
		return p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] == hashOf(stable) && p.DeletionTimestamp == nil
	}) {
		rev.StablePods = analysis.RevisionPods(stable.Name)
	}
	return rev
}

// analyse runs the analyses that apply to workload w's new revision rev (nil: none to run), and tells the
// workload's owner, once, when they become inconclusive.
func (a actor) analyse(ctx context.Context, w client.Object, rev *Revision) *analysis.Status {
	if rev == nil || a.analyzer == nil {
		return nil
	}
	status, notice := a.analyzer.Analyse(ctx, w, *rev)
	if notice != "" {
		logf.FromContext(ctx).Info("Analysis inconclusive", "kind", rev.Kind, "workload", klog.KObj(w), "revision", rev.Number, "detail", notice)
		a.recorder.Eventf(w, nil, corev1.EventTypeWarning, ReasonAnalysisInconclusive, "Analyse",
			"revision %s: %s; it is neither rolled back nor marked known-good until its analysis can judge it", rev.Number, notice)
	}
	return status
}

// observe takes the snapshot Decide works on, from the informer caches.
func (r *Reconciler) observe(ctx context.Context, key types.NamespacedName) (Snapshot, error) {
	var d appsv1.Deployment
	if err := r.client.Get(ctx, key, &d); err != nil {
		return Snapshot{}, err
	}
	var sets appsv1.ReplicaSetList
	if err := r.client.List(ctx, &sets, client.InNamespace(key.Namespace), client.MatchingFields{ownerIndex: string(d.UID)}); err != nil {
		return Snapshot{}, fmt.Errorf("list ReplicaSets of %s: %w", key, err)
	}
	snap := Snapshot{Deployment: &d, Now: r.now()}
	for i := range sets.Items {
		rs := &sets.Items[i]
		snap.ReplicaSets = append(snap.ReplicaSets, rs)
		var pods corev1.PodList
		if err := r.client.List(ctx, &pods, client.InNamespace(key.Namespace), client.MatchingFields{ownerIndex: string(rs.UID)}); err != nil {
			return Snapshot{}, fmt.Errorf("list pods of %s/%s: %w", key.Namespace, rs.Name, err)
		}
		for j := range pods.Items {
			snap.Pods = append(snap.Pods, &pods.Items[j])
		}
	}
	return snap, nil
}

// act carries out a decision: one patch, at most one Event, one metric.
func (r *Reconciler) act(ctx context.Context, snap Snapshot, dec Decision) error {
	d := snap.Deployment
	stamp := snap.Now.UTC().Format(time.RFC3339)
	switch dec.Action {
	case ActionNone:
		return nil
	case ActionMarkGood:
		if revisionOf(dec.Subject) == d.Annotations[revisionAnnotation] {
			r.metrics.workloads.Clear("Deployment", d.Namespace, d.Name)
		}
		return annotate(ctx, r.client, dec.Subject, AnnotationKnownGood, stamp)
	case ActionMarkRolledBack:
		return annotate(ctx, r.client, dec.Subject, AnnotationRolledBack, stamp)
	case ActionRollback:
		var target appsv1.ReplicaSet
		if err := r.live.Get(ctx, client.ObjectKeyFromObject(dec.Target), &target); err != nil {
			return fmt.Errorf("read target ReplicaSet %s: %w", klog.KObj(dec.Target), err)
		}
		if hashOf(&target) != hashOf(dec.Target) {
			return fmt.Errorf("target ReplicaSet %s changed since it was observed", klog.KObj(dec.Target))
		}
		// The cache keeps only some of the Deployment's annotations; the undo
		// keeps the rest (last-applied-configuration among them), so it starts
		// from the live object, which must still be the version decided on.
		var live appsv1.Deployment
		if err := r.live.Get(ctx, client.ObjectKeyFromObject(d), &live); err != nil {
			return fmt.Errorf("read Deployment %s: %w", klog.KObj(d), err)
		}
		if live.ResourceVersion != d.ResourceVersion {
			return apierrors.NewConflict(appsv1.Resource("deployments"), d.Name, errors.New("the Deployment changed since it was observed"))
		}
		d = &live
		patch, err := UndoPatch(d, &target, LastAction{
			Action: ActionRollback, Cause: dec.Cause, FromRevision: revisionOf(dec.Subject), ToRevision: revisionOf(dec.Target),
			FromHash: hashOf(dec.Subject), Message: dec.Detail, Stall: dec.Stall, Time: stamp,
		})
		if err != nil {
			return err
		}
		return r.undo(ctx, d, dec.Subject, hashOf(dec.Subject), dec.Target, client.RawPatch(types.JSONPatchType, patch), dec.Cause, dec.Signal, dec.Detail)
	default:
		return r.report(ctx, d, dec.Subject, LastAction{Action: dec.Action, Cause: dec.Cause, Key: dec.Key, Message: dec.Detail, Time: stamp})
	}
}

// undo rolls w back from subject (whose hash the undo's record names): it
// records the intent on subject first, sends the undo patch to w, and
// accounts for it: metrics, and the RolledBack Event naming target. A
// conflict is not a failure: the caller observes again.
func (a actor) undo(ctx context.Context, w, subject client.Object, subjectHash string, target runtime.Object, patch client.Patch, cause Cause, signal time.Time, detail string) error {
	// Intent first: a watcher that dies after the undo must not undo again (see AnnotationRollbackIntent).
	if err := annotate(ctx, a.client, subject, AnnotationRollbackIntent, strconv.FormatInt(w.GetGeneration(), 10)); err != nil {
		return err
	}
	if err := a.client.Patch(ctx, w, patch); err != nil {
		if !apierrors.IsConflict(err) {
			a.metrics.rollbacks.WithLabelValues(string(cause), "failed").Inc()
			// where the workload's owner looks: a refused undo is otherwise only in the watcher's log
			a.recorder.Eventf(w, target, corev1.EventTypeWarning, ReasonRollbackFailed, "Rollback",
				"could not roll back (%s): %v; retrying", detail, err)
		}
		return errors.Join(fmt.Errorf("roll back %s: %w", klog.KObj(w), err), a.withdrawIntent(ctx, w, subject, subjectHash))
	}
	a.metrics.stalls.WithLabelValues(string(cause)).Inc()
	a.metrics.rollbacks.WithLabelValues(string(cause), "success").Inc()
	if !signal.IsZero() {
		a.metrics.reaction.Observe(a.now().Sub(signal).Seconds())
	}
	a.recorder.Eventf(w, target, corev1.EventTypeWarning, ReasonRolledBack, "Rollback", "%s", detail)
	a.metrics.workloads.Set(kindOf(w), w.GetNamespace(), w.GetName(), stateRolledBack)
	return nil
}

// report records a report, dry run or skip as w's last action, so that it is
// made once, and tells about it (Event about the revision subject, metrics).
func (a actor) report(ctx context.Context, w client.Object, subject runtime.Object, la LastAction) error {
	if err := recordLastAction(ctx, a.client, w, la); err != nil {
		return err
	}
	a.metrics.stalls.WithLabelValues(string(la.Cause)).Inc()
	a.metrics.workloads.Set(kindOf(w), w.GetNamespace(), w.GetName(), stateStalled)
	switch la.Action {
	case ActionReport:
		a.recorder.Eventf(w, subject, corev1.EventTypeWarning, ReasonStallDetected, "Report", "%s", la.Message)
	case ActionDryRun:
		a.metrics.rollbacks.WithLabelValues(string(la.Cause), "dryrun").Inc()
		a.recorder.Eventf(w, subject, corev1.EventTypeWarning, ReasonRollbackSkipped, "DryRun", "%s", la.Message)
	default:
		a.metrics.rollbacks.WithLabelValues(string(la.Cause), "skipped").Inc()
		a.recorder.Eventf(w, subject, corev1.EventTypeWarning, ReasonRollbackSkipped, "Skip", "%s", la.Message)
	}
	return nil
}

// kindOf names a workload's kind for metrics and messages (typed objects carry no TypeMeta).
func kindOf(w client.Object) string {
	switch w.(type) {
	case *appsv1.Deployment:
		return "Deployment"
	case *appsv1.StatefulSet:
		return "StatefulSet"
	case *appsv1.DaemonSet:
		return "DaemonSet"
	}
	return w.GetObjectKind().GroupVersionKind().Kind
}

// withdrawIntent removes the rollback intent from subject after this watcher's undo of w failed, unless the undo was
// made anyway: another watcher (two overlap during a leader handover) wrote the same intent and won the race, and its
// record on the workload names subject. Left in place, a stale intent costs one missed rollback; removed wrongly, it
// could cost a second undo, which is why the record is checked first.
func (a actor) withdrawIntent(ctx context.Context, w, subject client.Object, subjectHash string) error {
	now, ok := w.DeepCopyObject().(client.Object)
	if !ok {
		return nil
	}
	if err := a.live.Get(ctx, client.ObjectKeyFromObject(w), now); err != nil {
		return fmt.Errorf("read %s to withdraw the rollback intent: %w", klog.KObj(w), err)
	}
	if la := lastAction(now); la.Action == ActionRollback && la.FromHash == subjectHash {
		return nil
	}
	return annotate(ctx, a.client, subject, AnnotationRollbackIntent, nil)
}

// annotate sets the annotation key on obj to value, a string, or removes it
// when value is nil.
func annotate(ctx context.Context, c client.Client, obj client.Object, key string, value any) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{key: value}}})
	if err != nil {
		return err
	}
	if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("annotate %s with %s: %w", klog.KObj(obj), key, err)
	}
	return nil
}

// recordLastAction stores the action on the Deployment, conditional on the
// version observed, so two watchers cannot both record (and report) it.
func recordLastAction(ctx context.Context, c client.Client, d client.Object, la LastAction) error {
	raw, err := json.Marshal(la)
	if err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": d.GetResourceVersion(),
		"annotations":     map[string]string{AnnotationLastAction: string(raw)},
	}})
	if err != nil {
		return err
	}
	if err := c.Patch(ctx, d, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("record last action on %s: %w", klog.KObj(d), err)
	}
	return nil
}
