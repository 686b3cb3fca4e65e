package rollback

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// RevisionReconciler rolls back stalled StatefulSets or DaemonSets, one kind
// per reconciler.
type RevisionReconciler struct {
	actor
	opts    config.Rollback
	breaker *Breaker
	kind    string
	newObj  func() client.Object
}

// NewRevisionReconciler builds the reconciler for kind, StatefulSet or
// DaemonSet. The breaker is shared with the other kinds: stalls of every
// kind count toward its limits.
func NewRevisionReconciler(c client.Client, live client.Reader, kind string, opts config.Rollback, breaker *Breaker, recorder events.EventRecorder, metrics *Metrics, analyzer *Analyzer, now func() time.Time) (*RevisionReconciler, error) {
	r := &RevisionReconciler{actor: actor{client: c, live: live, recorder: recorder, metrics: metrics, analyzer: analyzer, now: now}, opts: opts, breaker: breaker, kind: kind}
	switch kind {
	case "StatefulSet":
		r.newObj = func() client.Object { return &appsv1.StatefulSet{} }
	case "DaemonSet":
		r.newObj = func() client.Object { return &appsv1.DaemonSet{} }
	default:
		return nil, fmt.Errorf("no revision history for kind %q", kind)
	}
	return r, nil
}

// SetupWithManager registers the controller. The owner index on pods is
// registered by the Deployment reconciler; this one adds ControllerRevisions.
func (r *RevisionReconciler) SetupWithManager(mgr manager.Manager) error {
	return ctrl.ControllerManagedBy(mgr).
		Named("rollback-"+r.kind).
		For(r.newObj()).
		Owns(&appsv1.ControllerRevision{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), r.newObj(), handler.OnlyControllerOwner())).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.opts.Workers}).
		Complete(r)
}

// Reconcile observes one workload, decides, and acts.
func (r *RevisionReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := logf.FromContext(ctx)
	snap, err := r.observe(ctx, req.NamespacedName)
	if apierrors.IsNotFound(err) {
		r.metrics.workloads.Clear(r.kind, req.Namespace, req.Name)
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	snap.Analysis = r.analyse(ctx, snap.Workload, revisionOfUpdate(snap))
	dec := DecideRevisions(snap, ResolveSettings(r.opts, snap.Workload))
	if why, paused := r.breaker.Pause(r.kind+"/"+req.String(), req.Namespace, snap.Now, dec.Action, dec.Stall, r.metrics); paused {
		dec = RevisionDecision{
			Action: ActionSkip, Cause: dec.Cause, Subject: dec.Subject, Detail: why, RequeueAfter: r.breaker.window,
			Key: fmt.Sprintf("%d/%s/%s/breaker", dec.Subject.Revision, ActionSkip, dec.Cause),
		}
		if lastAction(snap.Workload).Key == dec.Key {
			return reconcile.Result{RequeueAfter: dec.RequeueAfter}, nil
		}
	}
	if dec.Action != ActionNone {
		log.Info("Acting on workload", "kind", r.kind, "workload", klog.KObj(snap.Workload), "action", dec.Action, "cause", dec.Cause, "detail", dec.Detail)
	}
	if err := r.act(ctx, snap, dec); err != nil {
		if apierrors.IsConflict(err) {
			log.V(1).Info("Conflict; observing again", "kind", r.kind, "workload", klog.KObj(snap.Workload))
			return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
		}
		return reconcile.Result{}, err
	}
	return reconcile.Result{RequeueAfter: dec.RequeueAfter}, nil
}

// revisionOfUpdate is what the analyzer needs of a StatefulSet's or DaemonSet's update revision; nil when there is
// nothing to analyse (see deploymentRevision). Their pods are named by the pods running a revision now.
func revisionOfUpdate(s RevisionSnapshot) *Revision {
	r := rolloutOf(s)
	w := s.Workload
	if !r.settled || r.update == nil || r.update.Annotations[AnnotationKnownGood] != "" || rolledBackOnce(r.update.Annotations, w.GetGeneration()) {
		return nil
	}
	var stable *appsv1.ControllerRevision
	for _, cr := range s.Revisions {
		if cr != r.update && cr.Annotations[AnnotationKnownGood] != "" && !rolledBackOnce(cr.Annotations, w.GetGeneration()) &&
			(stable == nil || cr.Revision > stable.Revision) {
			stable = cr
		}
	}
	var pods, stablePods []string
	for _, p := range s.Pods {
		switch h := p.Labels[appsv1.ControllerRevisionHashLabelKey]; {
		case p.DeletionTimestamp != nil:
		case h == r.podHash:
			pods = append(pods, p.Name)
		case stable != nil && h == revisionPodHash(stable, r.kind):
			stablePods = append(stablePods, p.Name)
		}
	}
	rev := &Revision{Kind: r.kind, Hash: r.update.Name, Number: revisionString(r.update), Pods: analysis.PodsOf(pods), Complete: r.complete}
	if len(stablePods) > 0 {
		rev.StablePods = analysis.PodsOf(stablePods)
	}
	return rev
}

// revisionPodHash is the controller-revision-hash label a revision's pods carry: a StatefulSet labels them with the
// revision's name, a DaemonSet with its hash.
func revisionPodHash(cr *appsv1.ControllerRevision, kind string) string {
	if kind == "StatefulSet" {
		return cr.Name
	}
	return cr.Labels[appsv1.ControllerRevisionHashLabelKey]
}

func (r *RevisionReconciler) observe(ctx context.Context, key types.NamespacedName) (RevisionSnapshot, error) {
	w := r.newObj()
	if err := r.client.Get(ctx, key, w); err != nil {
		return RevisionSnapshot{}, err
	}
	var revs appsv1.ControllerRevisionList
	if err := r.client.List(ctx, &revs, client.InNamespace(key.Namespace), client.MatchingFields{ownerIndex: string(w.GetUID())}); err != nil {
		return RevisionSnapshot{}, fmt.Errorf("list ControllerRevisions of %s %s: %w", r.kind, key, err)
	}
	var pods corev1.PodList
	if err := r.client.List(ctx, &pods, client.InNamespace(key.Namespace), client.MatchingFields{ownerIndex: string(w.GetUID())}); err != nil {
		return RevisionSnapshot{}, fmt.Errorf("list pods of %s %s: %w", r.kind, key, err)
	}
	snap := RevisionSnapshot{Workload: w, Now: r.now()}
	for i := range revs.Items {
		snap.Revisions = append(snap.Revisions, &revs.Items[i])
	}
	for i := range pods.Items {
		snap.Pods = append(snap.Pods, &pods.Items[i])
	}
	return snap, nil
}

// act carries out a decision: one patch (or the deletion of stuck pods), at
// most one Event, one metric.
func (r *RevisionReconciler) act(ctx context.Context, snap RevisionSnapshot, dec RevisionDecision) error {
	w := snap.Workload
	stamp := snap.Now.UTC().Format(time.RFC3339)
	switch dec.Action {
	case ActionNone:
		return nil
	case ActionMarkGood:
		r.metrics.workloads.Clear(r.kind, w.GetNamespace(), w.GetName()) // DecideRevisions marks only the update revision
		return annotate(ctx, r.client, dec.Subject, AnnotationKnownGood, stamp)
	case ActionMarkRolledBack:
		return annotate(ctx, r.client, dec.Subject, AnnotationRolledBack, stamp)
	case ActionDeleteStuckPods:
		var deleted []string
		for _, p := range dec.StuckPods {
			// The cache may not show a deletion made a moment ago: read the pod
			// live so that each is deleted, and reported, once.
			var cur corev1.Pod
			if err := r.live.Get(ctx, client.ObjectKeyFromObject(p), &cur); apierrors.IsNotFound(err) {
				continue
			} else if err != nil {
				return fmt.Errorf("read stuck pod %s: %w", klog.KObj(p), err)
			}
			if cur.UID != p.UID || cur.DeletionTimestamp != nil {
				continue // a replacement with the same name, or already going
			}
			// The preconditions delete this pod as read, never a replacement.
			err := r.client.Delete(ctx, &cur, client.Preconditions{UID: &cur.UID, ResourceVersion: &cur.ResourceVersion})
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("delete stuck pod %s: %w", klog.KObj(p), err)
			}
			deleted = append(deleted, cur.Name)
		}
		if len(deleted) > 0 {
			r.recorder.Eventf(w, nil, corev1.EventTypeWarning, ReasonRolledBack, "DeleteStuckPods",
				"deleted pod(s) %s of a rolled-back revision: they never became Ready, and the StatefulSet would wait for them forever", strings.Join(deleted, ", "))
		}
		return nil
	case ActionRollback:
		patch, err := RevisionUndoPatch(w, dec.Target, LastAction{
			Action: ActionRollback, Cause: dec.Cause, FromRevision: revisionString(dec.Subject), ToRevision: revisionString(dec.Target),
			FromHash: dec.Subject.Name, Message: dec.Detail, Stall: dec.Stall, Time: stamp,
		})
		if err != nil {
			return err
		}
		return r.undo(ctx, w, dec.Subject, dec.Subject.Name, dec.Target, client.RawPatch(types.StrategicMergePatchType, patch), dec.Cause, dec.Signal, dec.Detail)
	default:
		return r.report(ctx, w, dec.Subject, LastAction{Action: dec.Action, Cause: dec.Cause, Key: dec.Key, Message: dec.Detail, Time: stamp})
	}
}
