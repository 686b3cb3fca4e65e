package mutate

import (
	"encoding/json"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// defaulted is a Deployment as the API server hands it to admission: its own
// defaults (25%/25%, 600 s, 10 revisions) already filled in.
func defaulted(mods ...func(*appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxSurge: ptr.To(intstr.FromString("25%")), MaxUnavailable: ptr.To(intstr.FromString("25%")),
			}},
			ProgressDeadlineSeconds: ptr.To[int32](600),
			RevisionHistoryLimit:    ptr.To[int32](10),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "nginx", Image: "nginx:1.7.9", Ports: []corev1.ContainerPort{{ContainerPort: 80}}},
			}}},
		},
	}
	for _, m := range mods {
		m(d)
	}
	return d
}

func lastApplied(manifest string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[LastAppliedAnnotation] = manifest
	}
}

func annotate(k, v string) func(*appsv1.Deployment) {
	return func(d *appsv1.Deployment) {
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[k] = v
	}
}

func fields(r Result) []string {
	var out []string
	for _, c := range r.Changes {
		out = append(out, c.Path)
	}
	return out
}

func TestDeployment(t *testing.T) {
	allDefaults := []string{
		"spec.template.spec.containers[0].readinessProbe", "spec.template.spec.containers[0].livenessProbe",
		"spec.strategy.rollingUpdate.maxUnavailable", "spec.revisionHistoryLimit", "spec.minReadySeconds", "spec.progressDeadlineSeconds",
	}
	tests := []struct {
		name      string
		in        *appsv1.Deployment
		locked    bool
		want      []string // paths changed, in order
		notes     string   // substring of a note, if one is expected
		check     func(t *testing.T, d *appsv1.Deployment)
		defaultsF func(*Defaults)
	}{
		{
			name: "bare deployment from kubectl create gets every default",
			in:   defaulted(),
			want: allDefaults,
			check: func(t *testing.T, d *appsv1.Deployment) {
				c := d.Spec.Template.Spec.Containers[0]
				if c.ReadinessProbe.TCPSocket == nil || c.ReadinessProbe.TCPSocket.Port != intstr.FromInt32(80) {
					t.Errorf("readinessProbe = %+v, want tcpSocket :80", c.ReadinessProbe)
				}
				if c.LivenessProbe.FailureThreshold != 6 || c.LivenessProbe.PeriodSeconds != 20 {
					t.Errorf("livenessProbe not conservative: %+v", c.LivenessProbe)
				}
				if *d.Spec.Strategy.RollingUpdate.MaxUnavailable != intstr.FromInt32(0) || *d.Spec.Strategy.RollingUpdate.MaxSurge != intstr.FromString("25%") {
					t.Errorf("rollingUpdate = %+v", d.Spec.Strategy.RollingUpdate)
				}
				if *d.Spec.ProgressDeadlineSeconds != 120 || *d.Spec.RevisionHistoryLimit != 5 || d.Spec.MinReadySeconds != 5 {
					t.Errorf("spec = pds %d rhl %d mrs %d", *d.Spec.ProgressDeadlineSeconds, *d.Spec.RevisionHistoryLimit, d.Spec.MinReadySeconds)
				}
			},
		},
		{
			name: "client-side apply: a value equal to the API default that the user wrote is kept",
			in:   defaulted(lastApplied(`{"spec":{"revisionHistoryLimit":10,"strategy":{"rollingUpdate":{"maxUnavailable":"25%"}}}}`)),
			want: []string{allDefaults[0], allDefaults[1], "spec.minReadySeconds", "spec.progressDeadlineSeconds"},
		},
		{
			name: "server-side apply: the Apply entry of managedFields shows intent",
			in: defaulted(func(d *appsv1.Deployment) {
				d.ManagedFields = []metav1.ManagedFieldsEntry{{
					Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply, FieldsType: "FieldsV1",
					FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:progressDeadlineSeconds":{},"f:minReadySeconds":{}}}`),
				}}
			}),
			want: []string{allDefaults[0], allDefaults[1], "spec.strategy.rollingUpdate.maxUnavailable", "spec.revisionHistoryLimit"},
		},
		{
			name: "update managedFields entries are not intent",
			in: defaulted(func(d *appsv1.Deployment) {
				d.ManagedFields = []metav1.ManagedFieldsEntry{{
					Manager: "kubectl-create", Operation: metav1.ManagedFieldsOperationUpdate, FieldsType: "FieldsV1",
					FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:progressDeadlineSeconds":{}}}`),
				}}
			}),
			want: allDefaults,
		},
		{
			name: "values differing from the API default are the user's, whatever the client",
			in: defaulted(func(d *appsv1.Deployment) {
				d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromString("50%"))
				d.Spec.Strategy.RollingUpdate.MaxUnavailable = ptr.To(intstr.FromString("50%"))
				d.Spec.ProgressDeadlineSeconds = ptr.To[int32](300)
				d.Spec.RevisionHistoryLimit = ptr.To[int32](0)
				d.Spec.MinReadySeconds = 1
			}),
			want: []string{allDefaults[0], allDefaults[1]},
		},
		{
			name: "Recreate stays Recreate",
			in: defaulted(func(d *appsv1.Deployment) {
				d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
			}),
			want: []string{allDefaults[0], allDefaults[1], "spec.revisionHistoryLimit", "spec.minReadySeconds", "spec.progressDeadlineSeconds"},
			check: func(t *testing.T, d *appsv1.Deployment) {
				if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate != nil {
					t.Errorf("strategy = %+v", d.Spec.Strategy)
				}
			},
		},
		{
			name:  "a container without a port gets no probe and a note",
			in:    defaulted(func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Ports = nil }),
			want:  allDefaults[2:],
			notes: "container nginx: no probes injected: it declares no port",
		},
		{
			name: "named ports are probed by name; existing probes are kept",
			in: defaulted(func(d *appsv1.Deployment) {
				c := &d.Spec.Template.Spec.Containers[0]
				c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}
				c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}}}
			}),
			want: append([]string{allDefaults[0]}, allDefaults[2:]...),
			check: func(t *testing.T, d *appsv1.Deployment) {
				c := d.Spec.Template.Spec.Containers[0]
				if c.ReadinessProbe.TCPSocket.Port != intstr.FromString("http") {
					t.Errorf("readiness port = %v, want http", c.ReadinessProbe.TCPSocket.Port)
				}
				if c.LivenessProbe.Exec == nil {
					t.Error("user's livenessProbe replaced")
				}
			},
		},
		{
			name: "probe path annotation switches to httpGet; slow start adds a startupProbe",
			in:   defaulted(annotate(AnnotationProbePath, "/healthz"), annotate(AnnotationSlowStart, "95s")),
			want: []string{allDefaults[0], allDefaults[1], "spec.template.spec.containers[0].startupProbe", allDefaults[2], allDefaults[3], allDefaults[4], allDefaults[5]},
			check: func(t *testing.T, d *appsv1.Deployment) {
				c := d.Spec.Template.Spec.Containers[0]
				if c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" {
					t.Errorf("readinessProbe = %+v, want httpGet /healthz", c.ReadinessProbe)
				}
				if c.StartupProbe.FailureThreshold != 10 || c.StartupProbe.PeriodSeconds != 10 {
					t.Errorf("startupProbe allows %d x %ds, want 10 x 10s for 95s", c.StartupProbe.FailureThreshold, c.StartupProbe.PeriodSeconds)
				}
				// 100 s of startup budget + 5 s minReadySeconds + 60 s margin, above the 120 s default
				if *d.Spec.ProgressDeadlineSeconds != 165 {
					t.Errorf("progressDeadlineSeconds = %d, want 165 to cover the slow start", *d.Spec.ProgressDeadlineSeconds)
				}
			},
		},
		{
			name: "slow start added later raises the deadline rollout-guard set, on a client-side apply",
			in: defaulted(lastApplied(`{"metadata":{"annotations":{"rollout-guard.io/slow-start":"5m"}}}`), annotate(AnnotationSlowStart, "5m"), func(d *appsv1.Deployment) {
				d.Spec.ProgressDeadlineSeconds = ptr.To[int32](120)
				d.Spec.MinReadySeconds = 5
			}),
			want: []string{allDefaults[0], allDefaults[1], "spec.template.spec.containers[0].startupProbe", allDefaults[2], allDefaults[3], allDefaults[5]},
			check: func(t *testing.T, d *appsv1.Deployment) {
				if *d.Spec.ProgressDeadlineSeconds != 365 {
					t.Errorf("progressDeadlineSeconds = %d, want 300 + 5 + 60", *d.Spec.ProgressDeadlineSeconds)
				}
			},
		},
		{
			name: "a deadline the user wrote is kept, even below the startup allowance",
			in: defaulted(lastApplied(`{"spec":{"progressDeadlineSeconds":120}}`), annotate(AnnotationSlowStart, "5m"), func(d *appsv1.Deployment) {
				d.Spec.ProgressDeadlineSeconds = ptr.To[int32](120)
			}),
			want: []string{allDefaults[0], allDefaults[1], "spec.template.spec.containers[0].startupProbe", allDefaults[2], allDefaults[3], allDefaults[4]},
		},
		{
			name: "without a record of intent a deadline other than a default is taken as the user's",
			in: defaulted(annotate(AnnotationSlowStart, "5m"), func(d *appsv1.Deployment) {
				d.Spec.ProgressDeadlineSeconds = ptr.To[int32](200)
			}),
			want: []string{allDefaults[0], allDefaults[1], "spec.template.spec.containers[0].startupProbe", allDefaults[2], allDefaults[3], allDefaults[4]},
		},
		{
			name:  "a malformed annotation is ignored with a note",
			in:    defaulted(annotate(AnnotationSlowStart, "forever")),
			want:  allDefaults,
			notes: "rollout-guard.io/slow-start=\"forever\" ignored",
		},
		{
			name:  "liveness can be switched off per object",
			in:    defaulted(annotate(AnnotationLiveness, "false")),
			want:  append([]string{allDefaults[0]}, allDefaults[2:]...),
			notes: "",
		},
		{
			name:   "a restored template is never changed",
			in:     defaulted(),
			locked: true,
			want:   allDefaults[2:],
			notes:  "restores an earlier revision",
		},
		{
			name: "defaults never make maxSurge and maxUnavailable both 0",
			in: defaulted(lastApplied(`{"spec":{"strategy":{"rollingUpdate":{"maxSurge":0}}}}`), func(d *appsv1.Deployment) {
				d.Spec.Strategy.RollingUpdate.MaxSurge = ptr.To(intstr.FromInt32(0))
			}),
			want:  []string{allDefaults[0], allDefaults[1], allDefaults[3], allDefaults[4], allDefaults[5]},
			notes: "would make both 0",
		},
		{
			name:      "readiness injection can be disabled globally",
			in:        defaulted(),
			defaultsF: func(d *Defaults) { d.Readiness.Enabled, d.Liveness.Enabled = false, false },
			want:      allDefaults[2:],
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defaults, notes := Resolve(DefaultDefaults(), nil, nil, tt.in.Annotations)
			if tt.defaultsF != nil {
				tt.defaultsF(&defaults)
			}
			in := Input{Defaults: defaults, Intent: IntentOf(tt.in), TemplateLocked: tt.locked}
			d := tt.in.DeepCopy()
			r := Deployment(d, in)
			if got := strings.Join(fields(r), ","); got != strings.Join(tt.want, ",") {
				t.Errorf("changed\n %s\nwant\n %s", got, strings.Join(tt.want, ","))
			}
			allNotes := strings.Join(append(notes, r.Notes...), "\n")
			if tt.notes != "" && !strings.Contains(allNotes, tt.notes) {
				t.Errorf("notes %q do not mention %q", allNotes, tt.notes)
			}
			if tt.notes == "" && allNotes != "" {
				t.Errorf("unexpected notes: %s", allNotes)
			}
			if tt.check != nil {
				tt.check(t, d)
			}
			// Idempotent: mutating the mutated object changes nothing.
			again := d.DeepCopy()
			if r2 := Deployment(again, Input{Defaults: defaults, Intent: IntentOf(again), TemplateLocked: tt.locked}); len(r2.Changes) != 0 {
				t.Errorf("second mutation changed %v", fields(r2))
			}
			if !equality.Semantic.DeepEqual(again, d) {
				t.Error("second mutation altered the object")
			}
		})
	}
}

func TestChangeMessagesSpeakToTheUser(t *testing.T) {
	d := defaulted()
	r := Deployment(d, Input{Defaults: DefaultDefaults(), Intent: IntentOf(d)})
	want := "rollout-guard: set readinessProbe tcpSocket :80 on container nginx"
	if r.Changes[0].Message != want {
		t.Errorf("message = %q, want %q", r.Changes[0].Message, want)
	}
	if r.Changes[0].Field != "readinessProbe" {
		t.Errorf("field = %q", r.Changes[0].Field)
	}
}

func TestStatefulSet(t *testing.T) {
	tests := []struct {
		name string
		in   appsv1.StatefulSetSpec
		want []string
	}{
		{
			name: "rolling update gets maxUnavailable 1 (0 is invalid for StatefulSets) and history",
			in:   appsv1.StatefulSetSpec{UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType, RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](0)}}, RevisionHistoryLimit: ptr.To[int32](10)},
			want: []string{"spec.template.spec.containers[0].readinessProbe", "spec.template.spec.containers[0].livenessProbe", "spec.updateStrategy.rollingUpdate.maxUnavailable", "spec.revisionHistoryLimit", "spec.minReadySeconds"},
		},
		{
			name: "OnDelete is left alone",
			in:   appsv1.StatefulSetSpec{UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}, RevisionHistoryLimit: ptr.To[int32](3)},
			want: []string{"spec.template.spec.containers[0].readinessProbe", "spec.template.spec.containers[0].livenessProbe", "spec.minReadySeconds"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &appsv1.StatefulSet{Spec: tt.in}
			s.Spec.Template = defaulted().Spec.Template
			r := StatefulSet(s, Input{Defaults: DefaultDefaults(), Intent: IntentOf(s)})
			if got := strings.Join(fields(r), ","); got != strings.Join(tt.want, ",") {
				t.Errorf("changed %s, want %s", got, strings.Join(tt.want, ","))
			}
			if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType && s.Spec.UpdateStrategy.RollingUpdate != nil {
				t.Error("OnDelete got a rollingUpdate")
			}
			if r2 := StatefulSet(s, Input{Defaults: DefaultDefaults(), Intent: IntentOf(s)}); len(r2.Changes) != 0 {
				t.Errorf("not idempotent: %v", fields(r2))
			}
		})
	}
}

func TestDaemonSet(t *testing.T) {
	ds := &appsv1.DaemonSet{Spec: appsv1.DaemonSetSpec{
		Template: defaulted().Spec.Template,
		UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType, RollingUpdate: &appsv1.RollingUpdateDaemonSet{
			MaxUnavailable: ptr.To(intstr.FromInt32(1)), MaxSurge: ptr.To(intstr.FromInt32(0)),
		}},
		RevisionHistoryLimit: ptr.To[int32](10),
	}}
	r := DaemonSet(ds, Input{Defaults: DefaultDefaults(), Intent: IntentOf(ds)})
	want := "spec.template.spec.containers[0].readinessProbe,spec.template.spec.containers[0].livenessProbe,spec.updateStrategy.rollingUpdate.maxSurge,spec.updateStrategy.rollingUpdate.maxUnavailable,spec.revisionHistoryLimit,spec.minReadySeconds"
	if got := strings.Join(fields(r), ","); got != want {
		t.Errorf("changed %s, want %s", got, want)
	}
	if r2 := DaemonSet(ds, Input{Defaults: DefaultDefaults(), Intent: IntentOf(ds)}); len(r2.Changes) != 0 {
		t.Errorf("not idempotent: %v", fields(r2))
	}
}

func TestResolvePrecedence(t *testing.T) {
	global := DefaultDefaults()
	nsPath := "/from-namespace-config"
	ns := &Overrides{ProbePath: &nsPath, RevisionHistoryLimit: ptr.To[int32](7)}
	tests := []struct {
		name          string
		ns            *Overrides
		nsAnn, objAnn map[string]string
		wantPath      string
		wantRHL       int32
	}{
		{"global", nil, nil, nil, "", 5},
		{"namespace config over global", ns, nil, nil, "/from-namespace-config", 7},
		{"namespace annotation over namespace config", ns, map[string]string{AnnotationProbePath: "/ns-annotation"}, nil, "/ns-annotation", 7},
		{"object over namespace", ns, map[string]string{AnnotationProbePath: "/ns-annotation"}, map[string]string{AnnotationProbePath: "/object"}, "/object", 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := Resolve(global, tt.ns, tt.nsAnn, tt.objAnn)
			if d.ProbePath != tt.wantPath || d.Strategy.RevisionHistoryLimit != tt.wantRHL {
				t.Errorf("probePath %q rhl %d, want %q %d", d.ProbePath, d.Strategy.RevisionHistoryLimit, tt.wantPath, tt.wantRHL)
			}
		})
	}
}

func TestDefaultsValidate(t *testing.T) {
	d := DefaultDefaults()
	if errs := d.Validate(nil); len(errs) != 0 {
		t.Fatalf("built-in defaults invalid: %v", errs)
	}
	d.Readiness.PeriodSeconds = 0
	d.Strategy.MaxSurge = intstr.FromString("lots")
	d.Strategy.RevisionHistoryLimit = 0
	d.Strategy.ProgressDeadlineSeconds = 3
	errs := d.Validate(nil)
	got := errs.ToAggregate().Error()
	for _, want := range []string{"readiness.periodSeconds", "strategy.maxSurge", "strategy.revisionHistoryLimit", "strategy.progressDeadlineSeconds"} {
		if !strings.Contains(got, want) {
			t.Errorf("errors %q do not name %s", got, want)
		}
	}
}

func TestIntentOfUnparseableAnnotationIsUnknown(t *testing.T) {
	d := defaulted(lastApplied("{not json"))
	if IntentOf(d).Known() {
		t.Error("a broken last-applied annotation counted as intent")
	}
	raw, _ := json.Marshal(map[string]any{"spec": map[string]any{"minReadySeconds": 0}})
	d = defaulted(lastApplied(string(raw)))
	if in := IntentOf(d); !in.Known() || !in.Wrote("spec", "minReadySeconds") || in.Wrote("spec", "replicas") {
		t.Errorf("intent from %s misread", raw)
	}
}
