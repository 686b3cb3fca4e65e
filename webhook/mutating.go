package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/mutate"
)

// Mutator is the mutating admission handler for apps/v1 workloads.
type Mutator struct {
	decoder admission.Decoder
	opts    config.Mutation
	skip    []string
	// namespaces reads Namespace objects (from a cache) for their annotations.
	namespaces client.Reader
	// history reads ReplicaSets and ControllerRevisions live, only when an
	// update might restore one.
	history revisionHistory
	metrics *Metrics
}

// NewMutator builds the handler. namespaces and history may be nil in tests
// that need neither namespace annotations nor rollback detection.
func NewMutator(decoder admission.Decoder, opts config.Options, namespaces, history client.Reader, metrics *Metrics) *Mutator {
	return &Mutator{decoder: decoder, opts: opts.Mutation, skip: opts.SkippedNamespaces(), namespaces: namespaces, history: revisionHistory{history}, metrics: metrics}
}

const mutatingName = "mutating"

// Handle implements admission.Handler. It never panics: a panic is logged
// with the request UID and answered with an error, which the API server
// ignores for this webhook (failurePolicy Ignore).
func (m *Mutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	return m.metrics.guard(ctx, mutatingName, req, func(log logr.Logger) admission.Response { return m.handle(ctx, log, req) })
}

func (m *Mutator) handle(ctx context.Context, log logr.Logger, req admission.Request) admission.Response {
	if req.SubResource != "" || !handledOperation(req.Operation) || slices.Contains(m.skip, req.Namespace) {
		return admission.Allowed("")
	}
	obj, err := decodeWorkload(req.Kind, req.Object, "object")
	if err != nil {
		log.Error(err, "Cannot mutate request")
		return errored(err)
	}
	if mutate.OptedOut(obj.GetAnnotations()) {
		return admission.Allowed(mutate.AnnotationMutate + " is false")
	}
	original, err := json.Marshal(obj)
	if err != nil {
		return errored(fmt.Errorf("encode %s: %w", req.Kind.Kind, err))
	}
	defaults, notes := m.defaults(ctx, req.Namespace, obj.GetAnnotations())
	in := mutate.Input{Defaults: defaults, Intent: mutate.IntentOf(obj)}
	result := mutate.Workload(obj, in)
	if touchesTemplate(result) && req.Operation == admissionv1.Update {
		// The object as the request sent it, before mutation: what restoring
		// is judged on, and what is mutated again if it restores a revision.
		sent, err := decodeWorkload(req.Kind, req.Object, "object")
		if err != nil {
			return errored(err)
		}
		restored, err := m.history.restored(ctx, req, sent)
		if err != nil {
			// Unsure whether this is a rollback: leave the template alone
			// rather than risk turning an undo into a new rollout.
			log.Error(err, "Cannot tell whether the update restores a revision")
		}
		if restored != nil || err != nil {
			obj = sent
			in.TemplateLocked = true
			result = mutate.Workload(obj, in)
		}
	}
	warnings := append(notes, result.Notes...)
	for i := range warnings {
		warnings[i] = "rollout-guard: " + warnings[i]
	}
	warnings = limitWarnings(warnings)
	if len(result.Changes) == 0 {
		return admission.Allowed("").WithWarnings(warnings...)
	}
	mutated, err := json.Marshal(obj)
	if err != nil {
		return errored(fmt.Errorf("encode mutated %s: %w", req.Kind.Kind, err))
	}
	// Diffing two encodings of the same typed object keeps the patch to what
	// mutate changed: fields this build does not know are never dropped.
	patch, err := jsonpatch.CreatePatch(original, mutated)
	if err != nil {
		return errored(fmt.Errorf("compute patch: %w", err))
	}
	for _, c := range result.Changes {
		warnings = append(warnings, c.Message)
		if !isDryRun(req) {
			m.metrics.mutations.WithLabelValues(req.Kind.Kind, c.Field).Inc()
		}
	}
	log.V(1).Info("Mutated workload", "changes", len(result.Changes))
	return admission.Patched("", patch...).WithWarnings(warnings...)
}

func touchesTemplate(r mutate.Result) bool {
	for _, c := range r.Changes {
		if strings.HasPrefix(c.Path, "spec.template.") {
			return true
		}
	}
	return false
}

// defaults resolves the configured defaults for one object: global, the
// namespace's config entry, the namespace's annotations, the object's.
func (m *Mutator) defaults(ctx context.Context, namespace string, annotations map[string]string) (mutate.Defaults, []string) {
	var nsAnnotations map[string]string
	var notes []string
	if m.namespaces != nil && namespace != "" {
		var ns corev1.Namespace
		if err := m.namespaces.Get(ctx, client.ObjectKey{Name: namespace}, &ns); err != nil {
			logf.FromContext(ctx).Error(err, "Cannot read namespace annotations", "namespace", namespace)
			notes = append(notes, fmt.Sprintf("namespace %s settings could not be read; global defaults used", namespace))
		}
		nsAnnotations = ns.Annotations
	}
	var override *mutate.Overrides
	if o, ok := m.opts.Namespaces[namespace]; ok {
		override = &o
	}
	d, problems := mutate.Resolve(m.opts.Defaults, override, nsAnnotations, annotations)
	return d, append(notes, problems...)
}

// revisionHistory reads a workload's earlier revisions live; a nil reader
// knows of none.
type revisionHistory struct{ reader client.Reader }

// earlierRevision is a revision of a workload whose pod template an update puts back.
type earlierRevision struct {
	// Revision is its number, Hash its pod-template-hash (a ReplicaSet) or name (a ControllerRevision).
	Revision, Hash string
	Images         string
	Annotations    map[string]string
}

// restored finds the earlier revision whose pod template an update puts
// back (kubectl rollout undo, rollout-guard's own undo, or the same template
// applied again): a Deployment's ReplicaSet, or a StatefulSet's or
// DaemonSet's ControllerRevision; nil when there is none. The controller
// re-adopts that revision only if the template is left exactly as it was.
// obj is the object as the request sent it.
func (h revisionHistory) restored(ctx context.Context, req admission.Request, obj client.Object) (*earlierRevision, error) {
	if h.reader == nil {
		return nil, nil
	}
	old, err := decodeWorkload(req.Kind, req.OldObject, "oldObject")
	if err != nil {
		return nil, err
	}
	template, sel := templateOf(obj)
	if oldTemplate, _ := templateOf(old); equality.Semantic.DeepEqual(oldTemplate, template) {
		return nil, nil
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("parse selector of %s: %w", klog.KObj(obj), err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	inScope := []client.ListOption{client.InNamespace(obj.GetNamespace()), client.MatchingLabelsSelector{Selector: selector}}
	if _, ok := obj.(*appsv1.Deployment); ok {
		var sets appsv1.ReplicaSetList
		if err := h.reader.List(ctx, &sets, inScope...); err != nil {
			return nil, fmt.Errorf("list ReplicaSets of %s: %w", klog.KObj(obj), err)
		}
		for i := range sets.Items {
			rs := &sets.Items[i]
			t := rs.Spec.Template.DeepCopy()
			delete(t.Labels, appsv1.DefaultDeploymentUniqueLabelKey)
			if metav1.IsControlledBy(rs, obj) && equality.Semantic.DeepEqual(*t, template) {
				return &earlierRevision{Revision: rs.Annotations["deployment.kubernetes.io/revision"], Hash: rs.Labels[appsv1.DefaultDeploymentUniqueLabelKey],
					Images: imagesOf(t.Spec), Annotations: rs.Annotations}, nil
			}
		}
		return nil, nil
	}
	var revisions appsv1.ControllerRevisionList
	if err := h.reader.List(ctx, &revisions, inScope...); err != nil {
		return nil, fmt.Errorf("list ControllerRevisions of %s: %w", klog.KObj(obj), err)
	}
	for i := range revisions.Items {
		cr := &revisions.Items[i]
		// A revision holds the template as a patch: {"spec":{"template":{...}}}.
		var data struct {
			Spec struct {
				Template corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		}
		if !metav1.IsControlledBy(cr, obj) || json.Unmarshal(cr.Data.Raw, &data) != nil {
			continue
		}
		if equality.Semantic.DeepEqual(data.Spec.Template, template) {
			return &earlierRevision{Revision: strconv.FormatInt(cr.Revision, 10), Hash: cr.Name, Images: imagesOf(data.Spec.Template.Spec), Annotations: cr.Annotations}, nil
		}
	}
	return nil, nil
}

func imagesOf(spec corev1.PodSpec) string {
	images := make([]string, len(spec.Containers))
	for i, c := range spec.Containers {
		images[i] = c.Image
	}
	return strings.Join(images, ", ")
}

// templateOf is a workload's pod template and selector.
func templateOf(obj client.Object) (corev1.PodTemplateSpec, *metav1.LabelSelector) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return o.Spec.Template, o.Spec.Selector
	case *appsv1.StatefulSet:
		return o.Spec.Template, o.Spec.Selector
	case *appsv1.DaemonSet:
		return o.Spec.Template, o.Spec.Selector
	}
	return corev1.PodTemplateSpec{}, nil
}

func decision(resp admission.Response) string {
	switch {
	case resp.Result != nil && resp.Result.Code >= http.StatusBadRequest && !resp.Allowed && resp.Result.Reason != metav1.StatusReasonForbidden:
		return "error"
	case !resp.Allowed:
		return "denied"
	case len(resp.Patches) > 0:
		return "patched"
	case len(resp.Warnings) > 0:
		return "warned"
	}
	return "allowed"
}

func isDryRun(req admission.Request) bool { return req.DryRun != nil && *req.DryRun }
