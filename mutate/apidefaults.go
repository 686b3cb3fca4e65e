package mutate

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// APIDefaults fills in what kube-apiserver would default for the fields
// rollout-guard reads (replicas, rollout strategy, history, probe timings),
// so that an offline check sees what admission would see. It is not the
// whole of the API server's defaulting.
func APIDefaults(obj any) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		s := &o.Spec
		setDefault(&s.Replicas, 1)
		if s.Strategy.Type == "" {
			s.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
		}
		if s.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
			if s.Strategy.RollingUpdate == nil {
				s.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
			}
			setDefault(&s.Strategy.RollingUpdate.MaxSurge, intstr.FromString("25%"))
			setDefault(&s.Strategy.RollingUpdate.MaxUnavailable, intstr.FromString("25%"))
		}
		setDefault(&s.RevisionHistoryLimit, 10)
		setDefault(&s.ProgressDeadlineSeconds, apiProgressDeadline)
		probeDefaults(&s.Template.Spec)
	case *appsv1.StatefulSet:
		s := &o.Spec
		setDefault(&s.Replicas, 1)
		if s.UpdateStrategy.Type == "" {
			s.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
		}
		if s.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
			if s.UpdateStrategy.RollingUpdate == nil {
				s.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
			}
			setDefault(&s.UpdateStrategy.RollingUpdate.Partition, 0)
		}
		setDefault(&s.RevisionHistoryLimit, 10)
		probeDefaults(&s.Template.Spec)
	case *appsv1.DaemonSet:
		s := &o.Spec
		if s.UpdateStrategy.Type == "" {
			s.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
		}
		if s.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
			if s.UpdateStrategy.RollingUpdate == nil {
				s.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
			}
			setDefault(&s.UpdateStrategy.RollingUpdate.MaxUnavailable, intstr.FromInt32(1))
			setDefault(&s.UpdateStrategy.RollingUpdate.MaxSurge, intstr.FromInt32(0))
		}
		setDefault(&s.RevisionHistoryLimit, 10)
		probeDefaults(&s.Template.Spec)
	}
}

func setDefault[T any](p **T, v T) {
	if *p == nil {
		*p = ptr.To(v)
	}
}

func probeDefaults(spec *corev1.PodSpec) {
	for i := range spec.Containers {
		c := &spec.Containers[i]
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if p == nil {
				continue
			}
			zeroTo(&p.TimeoutSeconds, 1)
			zeroTo(&p.PeriodSeconds, 10)
			zeroTo(&p.SuccessThreshold, 1)
			zeroTo(&p.FailureThreshold, 3)
		}
	}
}

func zeroTo(v *int32, d int32) {
	if *v == 0 {
		*v = d
	}
}

// IntentFromManifest is the intent of a manifest file: every field in it was
// written by its author, as with client-side apply.
func IntentFromManifest(manifest map[string]any) Intent {
	return Intent{known: true, lastApplied: manifest}
}
