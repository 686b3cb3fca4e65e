package rollback

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/rollout-guard/rollout-guard/config"
)

// Watcher is the `rollout-guard watcher` process.
type Watcher struct {
	mgr manager.Manager
}

// NewWatcher builds the watcher's manager and controller.
func NewWatcher(cfg *rest.Config, opts config.Options, scheme *runtime.Scheme, reg prometheus.Registerer) (*Watcher, error) {
	selector, err := labels.Parse(opts.Rollback.Selector)
	if err != nil {
		return nil, fmt.Errorf("rollback.selector: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: opts.Watcher.MetricsAddr},
		HealthProbeBindAddress:  opts.Watcher.HealthAddr,
		LeaderElection:          opts.Watcher.LeaderElection,
		LeaderElectionID:        opts.Watcher.LeaderElectionID,
		LeaderElectionNamespace: opts.Namespace,
		// Stepping down at once on shutdown lets the standby take over quickly.
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}:        {Transform: trimPod},
			&appsv1.ReplicaSet{}: {Transform: trimReplicaSet},
			&appsv1.Deployment{}: {Transform: trimDeployment, Label: selector},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	metrics, err := NewMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	r := NewReconciler(mgr.GetClient(), mgr.GetAPIReader(), opts.Rollback, mgr.GetEventRecorder("rollout-guard"), metrics, time.Now)
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	return &Watcher{mgr: mgr}, nil
}

// Start runs the watcher until ctx is cancelled.
func (w *Watcher) Start(ctx context.Context) error {
	return w.mgr.Start(ctx)
}

// trimPod keeps only what stall detection reads, so that the cache of a
// large cluster's pods stays small: identity, owner, labels, scheduling
// condition and container states.
func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	trimmed := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
		Labels: p.Labels, OwnerReferences: p.OwnerReferences,
		CreationTimestamp: p.CreationTimestamp, DeletionTimestamp: p.DeletionTimestamp,
	}}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			trimmed.Status.Conditions = append(trimmed.Status.Conditions, corev1.PodCondition{Type: c.Type, Status: c.Status, Reason: c.Reason, Message: c.Message})
		}
	}
	trimmed.Status.ContainerStatuses = trimStatuses(p.Status.ContainerStatuses)
	trimmed.Status.InitContainerStatuses = trimStatuses(p.Status.InitContainerStatuses)
	return trimmed, nil
}

func trimStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	var out []corev1.ContainerStatus
	for _, s := range in {
		t := corev1.ContainerStatus{Name: s.Name, Image: s.Image, RestartCount: s.RestartCount}
		if s.State.Waiting != nil {
			t.State.Waiting = &corev1.ContainerStateWaiting{Reason: s.State.Waiting.Reason}
		}
		out = append(out, t)
	}
	return out
}

// trimReplicaSet keeps what decisions read: metadata, replicas, status and
// the containers' names and images (for messages). The undo reads the
// target's full template live, so the cache never needs it.
func trimReplicaSet(obj any) (any, error) {
	rs, ok := obj.(*appsv1.ReplicaSet)
	if !ok {
		return obj, nil
	}
	trimManagedFields(rs)
	rs.Spec.Template = trimTemplate(rs.Spec.Template)
	return rs, nil
}

// trimDeployment drops the pod template: decisions read the Deployment's
// metadata, strategy fields and status; the undo replaces the template whole.
func trimDeployment(obj any) (any, error) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return obj, nil
	}
	trimManagedFields(d)
	d.Spec.Template = trimTemplate(d.Spec.Template)
	return d, nil
}

func trimTemplate(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	out := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: t.Labels}}
	for _, c := range t.Spec.Containers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Image: c.Image})
	}
	return out
}

// trimManagedFields drops the field sets of managedFields but keeps who
// manages the object: GitOps detection needs only the manager names.
func trimManagedFields(o client.Object) {
	mf := o.GetManagedFields()
	for i := range mf {
		mf[i].FieldsV1 = nil
	}
	o.SetManagedFields(mf)
}
