package mutate

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// ProbeSettings are the timings of one injected probe.
type ProbeSettings struct {
	// Enabled turns injection of this probe on or off.
	Enabled             bool  `json:"enabled"`
	InitialDelaySeconds int32 `json:"initialDelaySeconds"`
	PeriodSeconds       int32 `json:"periodSeconds"`
	TimeoutSeconds      int32 `json:"timeoutSeconds"`
	SuccessThreshold    int32 `json:"successThreshold"`
	FailureThreshold    int32 `json:"failureThreshold"`
}

// Strategy are the rollout fields injected where the user wrote none.
type Strategy struct {
	MaxSurge                intstr.IntOrString `json:"maxSurge"`
	MaxUnavailable          intstr.IntOrString `json:"maxUnavailable"`
	ProgressDeadlineSeconds int32              `json:"progressDeadlineSeconds"`
	RevisionHistoryLimit    int32              `json:"revisionHistoryLimit"`
	MinReadySeconds         int32              `json:"minReadySeconds"`
}

// Defaults is everything the mutation injects, at one level of precedence
// resolved (see Overrides for how levels combine).
type Defaults struct {
	// ProbePath, when set, makes readiness and liveness probes httpGet on
	// this path instead of tcpSocket.
	ProbePath string        `json:"probePath,omitempty"`
	Readiness ProbeSettings `json:"readiness"`
	Liveness  ProbeSettings `json:"liveness"`
	// Startup is used only when an object asks for a slow start; its
	// failureThreshold is derived from the requested duration.
	Startup  ProbeSettings `json:"startup"`
	Strategy Strategy      `json:"strategy"`
}

// DefaultDefaults are rollout-guard's built-in defaults. They favour safety
// over speed: no pod is taken down before its replacement is ready
// (maxUnavailable 0), a stall is reported after two minutes instead of ten,
// and five revisions are kept for rollbacks.
func DefaultDefaults() Defaults {
	return Defaults{
		Readiness: ProbeSettings{Enabled: true, InitialDelaySeconds: 0, PeriodSeconds: 5, TimeoutSeconds: 1, SuccessThreshold: 1, FailureThreshold: 3},
		// Conservative: a liveness probe that fires too eagerly restarts healthy
		// but busy containers, so it waits longer and tolerates more failures.
		Liveness: ProbeSettings{Enabled: true, InitialDelaySeconds: 15, PeriodSeconds: 20, TimeoutSeconds: 5, SuccessThreshold: 1, FailureThreshold: 6},
		Startup:  ProbeSettings{Enabled: true, PeriodSeconds: 10, TimeoutSeconds: 1, SuccessThreshold: 1},
		Strategy: Strategy{
			MaxSurge:                intstr.FromString("25%"),
			MaxUnavailable:          intstr.FromInt32(0),
			ProgressDeadlineSeconds: 120,
			RevisionHistoryLimit:    5,
			MinReadySeconds:         5,
		},
	}
}

// Validate reports every field of d that the mutation could not use.
func (d Defaults) Validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	probes := []struct {
		name string
		p    ProbeSettings
	}{{"readiness", d.Readiness}, {"liveness", d.Liveness}, {"startup", d.Startup}}
	for _, pr := range probes {
		pp := path.Child(pr.name)
		if pr.p.PeriodSeconds < 1 {
			errs = append(errs, field.Invalid(pp.Child("periodSeconds"), pr.p.PeriodSeconds, "must be at least 1"))
		}
		if pr.p.TimeoutSeconds < 1 {
			errs = append(errs, field.Invalid(pp.Child("timeoutSeconds"), pr.p.TimeoutSeconds, "must be at least 1"))
		}
		if pr.p.SuccessThreshold != 1 {
			errs = append(errs, field.Invalid(pp.Child("successThreshold"), pr.p.SuccessThreshold, "must be 1 (Kubernetes requires it for liveness and startup probes)"))
		}
		if pr.name != "startup" && pr.p.FailureThreshold < 1 {
			errs = append(errs, field.Invalid(pp.Child("failureThreshold"), pr.p.FailureThreshold, "must be at least 1"))
		}
		if pr.p.InitialDelaySeconds < 0 {
			errs = append(errs, field.Invalid(pp.Child("initialDelaySeconds"), pr.p.InitialDelaySeconds, "must not be negative"))
		}
	}
	if d.ProbePath != "" && d.ProbePath[0] != '/' {
		errs = append(errs, field.Invalid(path.Child("probePath"), d.ProbePath, "must start with /"))
	}
	errs = append(errs, d.Strategy.validate(path.Child("strategy"))...)
	return errs
}

func (s Strategy) validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, f := range []struct {
		name string
		v    intstr.IntOrString
	}{{"maxSurge", s.MaxSurge}, {"maxUnavailable", s.MaxUnavailable}} {
		if _, err := intstr.GetScaledValueFromIntOrPercent(&f.v, 100, true); err != nil || (f.v.Type == intstr.Int && f.v.IntVal < 0) {
			errs = append(errs, field.Invalid(path.Child(f.name), f.v.String(), "must be a non-negative integer or a percentage like 25%"))
		}
	}
	if isZero(s.MaxSurge) && isZero(s.MaxUnavailable) {
		errs = append(errs, field.Invalid(path.Child("maxUnavailable"), s.MaxUnavailable.String(), "maxSurge and maxUnavailable cannot both be 0"))
	}
	if s.ProgressDeadlineSeconds <= s.MinReadySeconds {
		errs = append(errs, field.Invalid(path.Child("progressDeadlineSeconds"), s.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
	}
	if s.RevisionHistoryLimit < 1 {
		errs = append(errs, field.Invalid(path.Child("revisionHistoryLimit"), s.RevisionHistoryLimit, "must be at least 1, or nothing is left to roll back to"))
	}
	if s.MinReadySeconds < 0 {
		errs = append(errs, field.Invalid(path.Child("minReadySeconds"), s.MinReadySeconds, "must not be negative"))
	}
	return errs
}

func isZero(v intstr.IntOrString) bool {
	n, err := intstr.GetScaledValueFromIntOrPercent(&v, 100, true)
	return err == nil && n == 0
}

// Overrides change some defaults for one namespace. Nil fields inherit.
type Overrides struct {
	ProbePath               *string             `json:"probePath,omitempty"`
	Liveness                *bool               `json:"liveness,omitempty"`
	ReadinessPeriodSeconds  *int32              `json:"readinessPeriodSeconds,omitempty"`
	MaxSurge                *intstr.IntOrString `json:"maxSurge,omitempty"`
	MaxUnavailable          *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	ProgressDeadlineSeconds *int32              `json:"progressDeadlineSeconds,omitempty"`
	RevisionHistoryLimit    *int32              `json:"revisionHistoryLimit,omitempty"`
	MinReadySeconds         *int32              `json:"minReadySeconds,omitempty"`
}

// Apply returns d with the set fields of o replacing its own.
func (o Overrides) Apply(d Defaults) Defaults {
	set(&d.ProbePath, o.ProbePath)
	set(&d.Liveness.Enabled, o.Liveness)
	set(&d.Readiness.PeriodSeconds, o.ReadinessPeriodSeconds)
	set(&d.Strategy.MaxSurge, o.MaxSurge)
	set(&d.Strategy.MaxUnavailable, o.MaxUnavailable)
	set(&d.Strategy.ProgressDeadlineSeconds, o.ProgressDeadlineSeconds)
	set(&d.Strategy.RevisionHistoryLimit, o.RevisionHistoryLimit)
	set(&d.Strategy.MinReadySeconds, o.MinReadySeconds)
	return d
}

func set[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// Annotations an object (or its namespace) can carry to steer mutation.
const (
	// AnnotationMutate "false" opts the object out of all mutation.
	AnnotationMutate = "rollout-guard.io/mutate"
	// AnnotationProbePath switches probes to httpGet on this path.
	AnnotationProbePath = "rollout-guard.io/probe-path"
	// AnnotationLiveness "false" stops injection of liveness probes.
	AnnotationLiveness = "rollout-guard.io/liveness-probe"
	// AnnotationSlowStart asks for a startupProbe that allows this long to start (a Go duration, e.g. 2m).
	AnnotationSlowStart = "rollout-guard.io/slow-start"
)

// FromAnnotations reads the overrides an object or namespace carries.
// Malformed values are reported so the user learns why they were ignored.
func FromAnnotations(annotations map[string]string) (Overrides, []string) {
	var o Overrides
	var problems []string
	if v, ok := annotations[AnnotationProbePath]; ok {
		if len(v) > 0 && v[0] == '/' {
			o.ProbePath = &v
		} else {
			problems = append(problems, fmt.Sprintf("annotation %s=%q ignored: the path must start with /", AnnotationProbePath, v))
		}
	}
	if v, ok := annotations[AnnotationLiveness]; ok {
		switch v {
		case "true", "false":
			b := v == "true"
			o.Liveness = &b
		default:
			problems = append(problems, fmt.Sprintf("annotation %s=%q ignored: use \"true\" or \"false\"", AnnotationLiveness, v))
		}
	}
	return o, problems
}

// slowStart parses the slow-start annotation; zero means none was asked for.
func slowStart(annotations map[string]string) (time.Duration, string) {
	v, ok := annotations[AnnotationSlowStart]
	if !ok {
		return 0, ""
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > time.Hour {
		return 0, fmt.Sprintf("annotation %s=%q ignored: use a duration between 1s and 1h, like 2m", AnnotationSlowStart, v)
	}
	return d, ""
}
