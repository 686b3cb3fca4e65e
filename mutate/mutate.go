package mutate

import (
	"fmt"
	"math"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Change is one field the mutation set.
type Change struct {
	// Field names the kind of field, for metrics: readinessProbe, maxSurge, ...
	Field string
	// Path is where it was set, for people: spec.strategy.rollingUpdate.maxSurge.
	Path string
	// Message tells the user what was set, as an admission warning.
	Message string
}

// Result is what a mutation did and what the user should know.
type Result struct {
	Changes []Change
	// Notes explain what was deliberately not done (no port to probe,
	// malformed annotation, a restored template left alone).
	Notes []string
}

// Input is what a mutation needs besides the object.
type Input struct {
	Defaults Defaults
	Intent   Intent
	// TemplateLocked forbids changes to the pod template, because the template
	// is a restored revision (a rollback) whose ReplicaSet must be re-adopted.
	TemplateLocked bool
}

// Resolve combines the levels of configuration: global defaults, then the
// namespace's config overrides, then its annotations, then the object's
// annotations. Later levels win.
func Resolve(global Defaults, namespace *Overrides, nsAnnotations, objAnnotations map[string]string) (Defaults, []string) {
	d := global
	if namespace != nil {
		d = namespace.Apply(d)
	}
	var notes []string
	for _, a := range []map[string]string{nsAnnotations, objAnnotations} {
		o, problems := FromAnnotations(a)
		d = o.Apply(d)
		notes = append(notes, problems...)
	}
	return d, notes
}

// OptedOut reports whether the object asked not to be mutated.
func OptedOut(annotations map[string]string) bool {
	return annotations[AnnotationMutate] == "false"
}

// Deployment sets default probes and rollout fields on d.
func Deployment(d *appsv1.Deployment, in Input) Result {
	var r Result
	mutateTemplate(&r, &d.Spec.Template, d.Annotations, in)
	s := in.Defaults.Strategy
	spec := &d.Spec
	if spec.Strategy.Type == "" || spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if spec.Strategy.RollingUpdate == nil {
			spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		ru := spec.Strategy.RollingUpdate
		rollingUpdate(&r, in.Intent, []string{"spec", "strategy", "rollingUpdate"}, &ru.MaxSurge, &ru.MaxUnavailable, percent25, percent25, s)
	}
	int32Field(&r, in.Intent, "revisionHistoryLimit", &spec.RevisionHistoryLimit, 10, s.RevisionHistoryLimit)
	minReady(&r, in.Intent, &spec.MinReadySeconds, s.MinReadySeconds)
	progressDeadline(&r, in.Intent, spec, s.ProgressDeadlineSeconds)
	return r
}

// progressDeadline defaults progressDeadlineSeconds to the configured deadline, or to the pod's startup allowance
// when that is longer: a deadline shorter than a slow start makes Kubernetes report a healthy rollout as failed,
// and the watcher would undo it. A deadline the user wrote is theirs; one they did not write is raised to the
// allowance when the template's startup probes grow (the annotation was added or lengthened).
func progressDeadline(r *Result, in Intent, spec *appsv1.DeploymentSpec, configured int32) {
	if in.Wrote("spec", "progressDeadlineSeconds") {
		return
	}
	allowance := StartupAllowance(&spec.Template.Spec, spec.MinReadySeconds)
	want := max(configured, allowance)
	cur := spec.ProgressDeadlineSeconds
	switch {
	case cur == nil || *cur == apiProgressDeadline || *cur == configured:
	case in.Known() && *cur < allowance: // an intent record without the field: nobody wrote this value
	default:
		return
	}
	if cur != nil && *cur == want {
		return
	}
	spec.ProgressDeadlineSeconds = &want
	msg := fmt.Sprintf("rollout-guard: set spec.progressDeadlineSeconds to %d", want)
	if want > configured {
		msg += fmt.Sprintf(" to cover the startup probes' allowance (startup budget + minReadySeconds + %ds)", startupMargin)
	}
	r.Changes = append(r.Changes, Change{Field: "progressDeadlineSeconds", Path: "spec.progressDeadlineSeconds", Message: msg})
}

// apiProgressDeadline is the API server's default progressDeadlineSeconds.
const apiProgressDeadline = 600

// startupMargin is added to a startup allowance for what the probes do not time: the image pull, the first
// readiness success after the startup probe passes.
const startupMargin = 60

// StartupAllowance is how long, in seconds, a new pod of spec may take to become available when its containers
// use all of their startup probes' budget: the longest budget (initialDelaySeconds + periodSeconds x
// failureThreshold), plus minReadySeconds and a margin. Zero when no container has a startup probe.
func StartupAllowance(spec *corev1.PodSpec, minReadySeconds int32) int32 {
	var longest int32
	for _, c := range spec.Containers {
		longest = max(longest, StartupBudget(c.StartupProbe))
	}
	if longest == 0 {
		return 0
	}
	return longest + minReadySeconds + startupMargin
}

// StartupBudget is how long, in seconds, a startup probe lets its container start before the kubelet restarts
// it; zero for no probe. Unset fields count as the API defaults (period 10 s, 3 failures).
func StartupBudget(p *corev1.Probe) int32 {
	if p == nil {
		return 0
	}
	period, failures := p.PeriodSeconds, p.FailureThreshold
	if period == 0 {
		period = 10
	}
	if failures == 0 {
		failures = 3
	}
	return p.InitialDelaySeconds + period*failures
}

// Workload runs the mutation of obj's kind (a *Deployment, *StatefulSet or *DaemonSet) on it; any other object is
// left alone.
func Workload(obj any, in Input) Result {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return Deployment(o, in)
	case *appsv1.StatefulSet:
		return StatefulSet(o, in)
	case *appsv1.DaemonSet:
		return DaemonSet(o, in)
	}
	return Result{}
}

// StatefulSet sets default probes and rollout fields on s. OnDelete is left alone.
func StatefulSet(sts *appsv1.StatefulSet, in Input) Result {
	var r Result
	mutateTemplate(&r, &sts.Spec.Template, sts.Annotations, in)
	s := in.Defaults.Strategy
	spec := &sts.Spec
	if spec.UpdateStrategy.Type == "" || spec.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		if spec.UpdateStrategy.RollingUpdate == nil {
			spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
		// A StatefulSet has no surge: it replaces pods in place, so only
		// maxUnavailable applies, and 0 is not allowed there.
		ru := spec.UpdateStrategy.RollingUpdate
		if ru.MaxUnavailable == nil || (isOne(*ru.MaxUnavailable) && !in.Intent.Wrote("spec", "updateStrategy", "rollingUpdate", "maxUnavailable")) {
			want := s.MaxUnavailable
			if isZero(want) {
				want = intstr.FromInt32(1)
			}
			intOrStringField(&r, "maxUnavailable", "spec.updateStrategy.rollingUpdate.maxUnavailable", &ru.MaxUnavailable, want)
		}
	}
	int32Field(&r, in.Intent, "revisionHistoryLimit", &spec.RevisionHistoryLimit, 10, s.RevisionHistoryLimit)
	minReady(&r, in.Intent, &spec.MinReadySeconds, s.MinReadySeconds)
	return r
}

// DaemonSet sets default probes and rollout fields on ds. OnDelete is left alone.
func DaemonSet(ds *appsv1.DaemonSet, in Input) Result {
	var r Result
	mutateTemplate(&r, &ds.Spec.Template, ds.Annotations, in)
	s := in.Defaults.Strategy
	spec := &ds.Spec
	if spec.UpdateStrategy.Type == "" || spec.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if spec.UpdateStrategy.RollingUpdate == nil {
			spec.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		ru := spec.UpdateStrategy.RollingUpdate
		rollingUpdate(&r, in.Intent, []string{"spec", "updateStrategy", "rollingUpdate"}, &ru.MaxSurge, &ru.MaxUnavailable, intstr.FromInt32(0), intstr.FromInt32(1), s)
	}
	int32Field(&r, in.Intent, "revisionHistoryLimit", &spec.RevisionHistoryLimit, 10, s.RevisionHistoryLimit)
	minReady(&r, in.Intent, &spec.MinReadySeconds, s.MinReadySeconds)
	return r
}

var percent25 = intstr.FromString("25%")

// rollingUpdate defaults maxSurge and maxUnavailable, never leaving both at
// 0 (the API rejects that) when the user wrote one of them as 0.
func rollingUpdate(r *Result, in Intent, path []string, surge, unavailable **intstr.IntOrString, apiSurge, apiUnavailable intstr.IntOrString, s Strategy) {
	base := strings.Join(path, ".")
	wantSurge := unset(*surge, apiSurge, in, append(path, "maxSurge"))
	wantUnavailable := unset(*unavailable, apiUnavailable, in, append(path, "maxUnavailable"))
	newSurge, newUnavailable := value(*surge), value(*unavailable)
	if wantSurge {
		newSurge = s.MaxSurge
	}
	if wantUnavailable {
		newUnavailable = s.MaxUnavailable
	}
	if isZero(newSurge) && isZero(newUnavailable) {
		r.Notes = append(r.Notes, fmt.Sprintf("%s: kept maxSurge %s and maxUnavailable %s: the defaults would make both 0, which Kubernetes rejects",
			base, show(*surge), show(*unavailable)))
		return
	}
	if wantSurge {
		intOrStringField(r, "maxSurge", base+".maxSurge", surge, s.MaxSurge)
	}
	if wantUnavailable {
		intOrStringField(r, "maxUnavailable", base+".maxUnavailable", unavailable, s.MaxUnavailable)
	}
}

// unset reports whether a field may take rollout-guard's default: it is
// absent, or it holds the API server's default and the user did not write it.
func unset(cur *intstr.IntOrString, apiDefault intstr.IntOrString, in Intent, path []string) bool {
	if cur == nil {
		return true
	}
	return *cur == apiDefault && !in.Wrote(path...)
}

func value(v *intstr.IntOrString) intstr.IntOrString {
	if v == nil {
		return intstr.IntOrString{}
	}
	return *v
}

func show(v *intstr.IntOrString) string {
	if v == nil {
		return "unset"
	}
	return v.String()
}

func isOne(v intstr.IntOrString) bool { return v.Type == intstr.Int && v.IntVal == 1 }

func intOrStringField(r *Result, name, path string, dst **intstr.IntOrString, want intstr.IntOrString) {
	if *dst != nil && **dst == want {
		return
	}
	v := want
	*dst = &v
	r.Changes = append(r.Changes, Change{Field: name, Path: path, Message: fmt.Sprintf("rollout-guard: set %s to %s", path, want.String())})
}

func int32Field(r *Result, in Intent, name string, dst **int32, apiDefault, want int32) {
	if *dst != nil && (**dst != apiDefault || in.Wrote("spec", name)) {
		return
	}
	if *dst != nil && **dst == want {
		return
	}
	v := want
	*dst = &v
	r.Changes = append(r.Changes, Change{Field: name, Path: "spec." + name, Message: fmt.Sprintf("rollout-guard: set spec.%s to %d", name, want)})
}

// minReady defaults minReadySeconds. Its API default, 0, is also what an
// omitted field decodes to, so only the user's intent can tell them apart.
func minReady(r *Result, in Intent, dst *int32, want int32) {
	if *dst != 0 || in.Wrote("spec", "minReadySeconds") || want == 0 {
		return
	}
	*dst = want
	r.Changes = append(r.Changes, Change{Field: "minReadySeconds", Path: "spec.minReadySeconds", Message: fmt.Sprintf("rollout-guard: set spec.minReadySeconds to %d", want)})
}

// mutateTemplate injects probes into every container that lacks them.
func mutateTemplate(r *Result, t *corev1.PodTemplateSpec, annotations map[string]string, in Input) {
	d := in.Defaults
	slow, problem := slowStart(annotations)
	if problem != "" {
		r.Notes = append(r.Notes, problem)
	}
	for i := range t.Spec.Containers {
		c := &t.Spec.Containers[i]
		missing := (d.Readiness.Enabled && c.ReadinessProbe == nil) ||
			(d.Liveness.Enabled && c.LivenessProbe == nil) ||
			(slow > 0 && d.Startup.Enabled && c.StartupProbe == nil)
		if !missing {
			continue
		}
		if in.TemplateLocked {
			r.Notes = append(r.Notes, fmt.Sprintf("container %s: no probes injected: the pod template restores an earlier revision, and changing it would start a new rollout instead of a rollback", c.Name))
			continue
		}
		handler, desc, ok := probeHandler(c, d.ProbePath)
		if !ok {
			r.Notes = append(r.Notes, fmt.Sprintf("container %s: no probes injected: it declares no port. Add a containerPort or your own readinessProbe, or annotate the workload %s: \"false\"", c.Name, AnnotationMutate))
			continue
		}
		base := fmt.Sprintf("spec.template.spec.containers[%d]", i)
		if d.Readiness.Enabled && c.ReadinessProbe == nil {
			c.ReadinessProbe = probe(handler, d.Readiness)
			r.add("readinessProbe", base, c.Name, desc)
		}
		if d.Liveness.Enabled && c.LivenessProbe == nil {
			c.LivenessProbe = probe(handler, d.Liveness)
			r.add("livenessProbe", base, c.Name, desc)
		}
		if slow > 0 && d.Startup.Enabled && c.StartupProbe == nil {
			settings := d.Startup
			settings.FailureThreshold = int32(math.Ceil(slow.Seconds() / float64(settings.PeriodSeconds)))
			c.StartupProbe = probe(handler, settings)
			r.add("startupProbe", base, c.Name, fmt.Sprintf("%s allowing %s to start", desc, slow))
		}
	}
}

func (r *Result) add(field, base, container, desc string) {
	r.Changes = append(r.Changes, Change{
		Field:   field,
		Path:    base + "." + field,
		Message: fmt.Sprintf("rollout-guard: set %s %s on container %s", field, desc, container),
	})
}

// probeHandler picks what to probe: the first declared port, by name where
// it has one, with httpGet when a path is configured and tcpSocket otherwise.
func probeHandler(c *corev1.Container, path string) (corev1.ProbeHandler, string, bool) {
	if len(c.Ports) == 0 {
		return corev1.ProbeHandler{}, "", false
	}
	p := c.Ports[0]
	port := intstr.FromInt32(p.ContainerPort)
	if p.Name != "" {
		port = intstr.FromString(p.Name)
	}
	if path != "" {
		return corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: port, Scheme: corev1.URISchemeHTTP}},
			fmt.Sprintf("httpGet %s on :%s", path, port.String()), true
	}
	return corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: port}}, "tcpSocket :" + port.String(), true
}

func probe(h corev1.ProbeHandler, s ProbeSettings) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:        h,
		InitialDelaySeconds: s.InitialDelaySeconds,
		PeriodSeconds:       s.PeriodSeconds,
		TimeoutSeconds:      s.TimeoutSeconds,
		SuccessThreshold:    s.SuccessThreshold,
		FailureThreshold:    s.FailureThreshold,
	}
}
