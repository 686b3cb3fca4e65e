package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// Validator is the validating admission handler: workloads are judged by
// the policy set, RolloutPolicies by the compiler.
type Validator struct {
	decoder admission.Decoder
	skip    []string
	cfg     policies.Config
	set     *PolicySet
	// cache reads Namespaces and RolloutPolicyExceptions.
	cache client.Reader
	// live reads around the cache: the workload a scale changes.
	live client.Reader
	// history tells an undo from a new template, so that an undo is not judged again.
	history revisionHistory
	// status writes what requests show into the status of exceptions and policies; nil fields write nothing.
	status  statusWriters
	metrics *Metrics
	now     func() time.Time
}

// statusWriters record, in the background, the uses of RolloutPolicyExceptions and the evaluation failures of
// RolloutPolicies.
type statusWriters struct {
	exceptions *exceptionRecorder
	failures   *failureRecorder
}

// NewValidator builds the validating handler. cache, live and the status writers may be nil in tests.
func NewValidator(decoder admission.Decoder, opts config.Options, set *PolicySet, cache, live client.Reader, status statusWriters, metrics *Metrics) *Validator {
	return &Validator{
		decoder: decoder, skip: append(opts.SkippedNamespaces(), opts.Policies.SkipNamespaces...), cfg: opts.Policies,
		set: set, cache: cache, live: live, history: revisionHistory{live}, status: status, metrics: metrics, now: time.Now,
	}
}

const validatingName = "validating"

// Handle implements admission.Handler.
func (v *Validator) Handle(ctx context.Context, req admission.Request) admission.Response {
	return v.metrics.guard(ctx, validatingName, req, func(log logr.Logger) admission.Response { return v.handle(ctx, log, req) })
}

func (v *Validator) handle(ctx context.Context, log logr.Logger, req admission.Request) admission.Response {
	if req.SubResource == "scale" && req.Operation == admissionv1.Update && !slices.Contains(v.skip, req.Namespace) {
		return v.validateScale(ctx, log, req)
	}
	if req.SubResource != "" || !handledOperation(req.Operation) {
		return admission.Allowed("")
	}
	if req.Kind.Group == v1alpha1.GroupVersion.Group {
		switch req.Kind.Kind {
		case "RolloutPolicy":
			return v.validatePolicy(ctx, req)
		case "RolloutPolicyException":
			return v.validateException(ctx, req)
		case "RolloutAnalysis":
			return v.validateAnalysis(ctx, req)
		}
		return admission.Allowed("")
	}
	if slices.Contains(v.skip, req.Namespace) {
		return admission.Allowed("")
	}
	// A typed decode rejects objects of the wrong shape with a clear error;
	// policies then read the generic form.
	typed, err := decodeWorkload(req.Kind, req.Object, "object")
	if err != nil {
		log.Error(err, "Cannot validate request")
		return errored(err)
	}
	object, err := decodeMap(req.Object.Raw, "object")
	if err != nil {
		log.Error(err, "Cannot validate request")
		return errored(err)
	}
	var old map[string]any
	if len(req.OldObject.Raw) > 0 {
		if old, err = decodeMap(req.OldObject.Raw, "oldObject"); err != nil {
			log.Error(err, "Cannot validate request")
			return errored(err)
		}
	}
	var nsLabels map[string]string
	if v.cache != nil {
		var ns corev1.Namespace
		if err := v.cache.Get(ctx, client.ObjectKey{Name: req.Namespace}, &ns); err != nil {
			log.Error(err, "Cannot read namespace labels", "namespace", req.Namespace)
		}
		nsLabels = ns.Labels
	}
	if v.cfg.DisableLabel != "" && nsLabels[v.cfg.DisableLabel] == "disabled" {
		return admission.Allowed(fmt.Sprintf("policies disabled in namespace %s by label %s", req.Namespace, v.cfg.DisableLabel))
	}
	// An update that changes the pod template starts a rollout or puts back an earlier revision: an undo, or a
	// template the watcher rolled back applied again. One live read of the workload's revisions tells which.
	var restored *earlierRevision
	if req.Operation == admissionv1.Update && old != nil && !sameAt(old, object, "spec.template") {
		var rerr error
		if restored, rerr = v.history.restored(ctx, req, typed); rerr != nil {
			log.Error(rerr, "Cannot tell whether the update restores a revision")
		}
	}
	set := v.set.get()
	violations, err := v.evaluate(ctx, set, req, object, old, nsLabels, rolledBackInput(restored, old, v.now()))
	for _, vi := range violations {
		if vi.Failed {
			// one careless policy shows as its own failure; the other verdicts stand
			log.Info("Policy could not be evaluated; its onError verdict stands in", "policy", vi.Policy, "enforcement", vi.Enforcement, "error", vi.Message)
			v.metrics.evalFailures.WithLabelValues(vi.Policy).Inc()
			v.status.failures.record(vi.Policy, vi.Message, v.now())
		}
	}
	if err == nil && len(violations) == 0 {
		return admission.Allowed("")
	}
	// An undo (the watcher's or kubectl rollout undo) puts back a template the cluster admitted before; judging it
	// again would let one careless policy, denying or failing, stop every rollback. Only known-bad-revision still
	// speaks, when it could judge: it judges the revision itself, one the watcher rolled back.
	if restored != nil && onlyTemplateChanged(object, old) {
		err = nil
		violations = slices.DeleteFunc(violations, func(vi policies.Violation) bool { return vi.Policy != policies.KnownBadRevision || vi.Failed })
		if len(violations) == 0 {
			log.V(1).Info("Restored revision admitted without policy verdicts")
			return admission.Allowed("restores an earlier revision of this " + req.Kind.Kind)
		}
	}
	if err != nil {
		log.Error(err, "Policy evaluation failed")
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("rollout-guard could not evaluate its policies, so it cannot admit this %s: %v", req.Kind.Kind, err))
	}
	workload := policies.Workload{Kind: req.Kind.Kind, Name: req.Name, Labels: stringMap(object, "metadata", "labels")}
	violations, warnings, uses := policies.ApplyExceptions(violations, v.exceptionsFor(ctx, req.Namespace), workload, v.now(), v.cfg.MaxExceptionDuration.Duration)
	for _, u := range uses {
		log.Info("Policies waived by an exception", "exception", u.Exception.Key(), "policies", u.Policies, "user", req.UserInfo.Username)
		if !isDryRun(req) {
			v.status.exceptions.record(req, u, v.now())
			for _, p := range u.Policies {
				v.metrics.exemptions.WithLabelValues(p, "exception").Inc()
			}
		}
	}
	violations, exemptWarnings, exempted := policies.ApplyExemptions(violations, stringMap(object, "metadata", "annotations"), v.now(), v.cfg.AnnotationExemptions)
	warnings = append(warnings, exemptWarnings...)
	for i := range warnings {
		warnings[i] = "rollout-guard: " + warnings[i]
	}
	if !isDryRun(req) {
		for _, p := range exempted {
			v.metrics.exemptions.WithLabelValues(p, "annotation").Inc()
		}
	}
	if req.Operation == admissionv1.Update && old != nil && hasDenials(violations) && sameAt(old, object, "spec.template") {
		violations, err = v.ratchet(ctx, set, req, object, old, nsLabels, violations)
		if err != nil {
			log.Error(err, "Policy evaluation of the old object failed")
			return admission.Errored(http.StatusInternalServerError, fmt.Errorf("rollout-guard could not evaluate its policies on the current object: %v", err))
		}
	}
	var denials, warns, dryRuns []policies.Violation
	for _, vi := range violations {
		if !isDryRun(req) {
			v.metrics.violations.WithLabelValues(vi.Policy, string(vi.Enforcement)).Inc()
		}
		switch vi.Enforcement {
		case policies.Deny:
			denials = append(denials, vi)
		case policies.Warn:
			warns = append(warns, vi)
		case policies.DryRun:
			dryRuns = append(dryRuns, vi)
		}
	}
	for _, d := range policies.Summarize(dryRuns) {
		log.Info("Dry-run policy violation", "violation", policies.Truncate(d, 512))
	}
	// Summarised and capped: one object can break a rule thousands of times (a container each), and every byte of
	// the answer is sent back, logged and shown again.
	for _, w := range policies.Summarize(warns) {
		warnings = append(warnings, "rollout-guard: "+w)
	}
	warnings = limitWarnings(warnings)
	if len(denials) > 0 {
		noun := "violation"
		if policies.Count(denials) > 1 {
			noun = "violations"
		}
		// the request's logger already names the object, kind, operation and user
		log.Info("Denied", "dryRun", isDryRun(req), "policies", policyNames(denials))
		msg := fmt.Sprintf("rollout-guard denied this %s (%d %s):\n- %s\n%s", req.Kind.Kind, policies.Count(denials), noun,
			strings.Join(policies.Summarize(denials), "\n- "), policies.WaiverHint)
		return admission.Denied(policies.Truncate(msg, policies.MaxMessageBytes)).WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}

// evaluate runs the policy set on object (and old, on UPDATE) and keeps
// the violations of policies whose selectors match.
// rolledBack, when not nil, is input.rolledBack: the update puts back a revision the watcher rolled back.
func (v *Validator) evaluate(ctx context.Context, set *compiledSet, req admission.Request, object, old map[string]any, nsLabels map[string]string, rolledBack map[string]any) ([]policies.Violation, error) {
	input := map[string]any{"operation": string(req.Operation), "userInfo": userInfo(req.UserInfo), "object": object}
	if old != nil {
		input["oldObject"] = old
	}
	if rolledBack != nil {
		input["rolledBack"] = rolledBack
	}
	timer := prometheus.NewTimer(v.metrics.evalDuration)
	violations, err := set.eval.Evaluate(ctx, input, req.Kind.Kind)
	timer.ObserveDuration()
	if err != nil {
		return nil, err
	}
	objLabels := labels.Set(stringMap(object, "metadata", "labels"))
	return slices.DeleteFunc(violations, func(vi policies.Violation) bool {
		sel, custom := set.selectors[vi.Policy]
		return custom && (!sel.namespace.Matches(labels.Set(nsLabels)) || !sel.object.Matches(objLabels))
	}), nil
}

// userInfo is the requester in its JSON form. OPA converts a struct in its
// input by a JSON round trip on every evaluation; a map it reads directly.
func userInfo(u authenticationv1.UserInfo) map[string]any {
	m := map[string]any{}
	if u.Username != "" {
		m["username"] = u.Username
	}
	if u.UID != "" {
		m["uid"] = u.UID
	}
	if len(u.Groups) > 0 {
		m["groups"] = u.Groups
	}
	if len(u.Extra) > 0 {
		extra := make(map[string]any, len(u.Extra))
		for k, v := range u.Extra {
			extra[k] = []string(v)
		}
		m["extra"] = extra
	}
	return m
}

// ratchet lets an update that starts no rollout (the pod template unchanged)
// through a denial the object already had: the same policy on the same field,
// and the field unchanged (for a violation without a field: the same
// message). Scaling, relabelling or annotating an old object is never blocked
// by a rule it broke before. An update that changes the template is a new
// rollout and is judged in full, whatever let the old object in: a policy
// added since, an exception that has expired or been deleted, a webhook that
// was down. So a gap closes at the next rollout instead of lasting forever.
func (v *Validator) ratchet(ctx context.Context, set *compiledSet, req admission.Request, object, old map[string]any, nsLabels map[string]string, violations []policies.Violation) ([]policies.Violation, error) {
	before, err := v.evaluate(ctx, set, req, old, old, nsLabels, nil)
	if err != nil {
		return nil, err
	}
	existed := map[string]bool{}
	for _, b := range before {
		existed[ratchetKey(b)] = true
	}
	out := make([]policies.Violation, 0, len(violations))
	for _, vi := range violations {
		if vi.Enforcement == policies.Deny && existed[ratchetKey(vi)] && (vi.Field == "" || sameAt(old, object, vi.Field)) {
			vi.Enforcement = policies.Warn
			vi.Message = "already broken before this update, which starts no rollout, so not blocking it (the next change to the pod template is judged in full): " + vi.Message
		}
		out = append(out, vi)
	}
	return out, nil
}

// ratchetKey identifies a violation across an update: by field where it names
// one, by message otherwise.
func ratchetKey(v policies.Violation) string {
	if v.Field != "" {
		return v.Policy + "\x00" + v.Field
	}
	return v.Policy + "\x00\x00" + v.Message
}

func hasDenials(vs []policies.Violation) bool {
	return slices.ContainsFunc(vs, func(v policies.Violation) bool { return v.Enforcement == policies.Deny })
}

func (v *Validator) validatePolicy(ctx context.Context, req admission.Request) admission.Response {
	var rp v1alpha1.RolloutPolicy
	if err := v.decoder.DecodeRaw(req.Object, &rp); err != nil {
		return errored(badRequest("cannot decode the RolloutPolicy: %v", err))
	}
	if err := CheckRolloutPolicy(ctx, &rp); err != nil {
		return admission.Denied(fmt.Sprintf("rollout-guard: %v", err))
	}
	if err := v.set.CheckWith(ctx, &rp); err != nil {
		return admission.Denied(fmt.Sprintf("rollout-guard: RolloutPolicy %s compiles alone but not with the policies in force, so it would not be enforced: %v", rp.Name, err))
	}
	if rp.Spec.Parameters != nil && len(rp.Spec.Parameters.Raw) > 0 && rp.Spec.ParameterSchema == nil {
		return admission.Allowed("").WithWarnings(fmt.Sprintf("rollout-guard: RolloutPolicy %s has spec.parameters but no spec.parameterSchema, "+
			"so a misspelt parameter would go unnoticed: declare them (an OpenAPI v3 schema)", rp.Name))
	}
	return admission.Allowed("")
}

func decodeMap(raw []byte, which string) (map[string]any, error) {
	if len(raw) == 0 {
		return nil, badRequest("the admission request has no %s", which)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, badRequest("cannot decode the %s: %v", which, err)
	}
	return m, nil
}

func stringMap(obj map[string]any, path ...string) map[string]string {
	cur := any(obj)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	m, _ := cur.(map[string]any)
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// sameAt reports whether two objects hold equal values at a field path like
// spec.template.spec.containers[0].image.
func sameAt(a, b map[string]any, path string) bool {
	va, oka := valueAt(a, path)
	vb, okb := valueAt(b, path)
	return oka == okb && reflect.DeepEqual(va, vb)
}

func valueAt(obj map[string]any, path string) (any, bool) {
	cur := any(obj)
	for _, part := range strings.Split(path, ".") {
		name, index := part, -1
		if i := strings.IndexByte(part, '['); i >= 0 && strings.HasSuffix(part, "]") {
			n, err := strconv.Atoi(part[i+1 : len(part)-1])
			if err != nil {
				return nil, false
			}
			name, index = part[:i], n
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[name]; !ok {
			return nil, false
		}
		if index >= 0 {
			s, ok := cur.([]any)
			if !ok || index >= len(s) {
				return nil, false
			}
			cur = s[index]
		}
	}
	return cur, true
}

// onlyTemplateChanged reports whether an update leaves the spec as it was but for the pod template: the shape of an
// undo, which restores a template and annotations and never touches replicas or strategy.
func onlyTemplateChanged(object, old map[string]any) bool {
	spec, _ := object["spec"].(map[string]any)
	oldSpec, _ := old["spec"].(map[string]any)
	if spec == nil || oldSpec == nil {
		return false
	}
	for k, v := range spec {
		if k != "template" && !reflect.DeepEqual(v, oldSpec[k]) {
			return false
		}
	}
	for k := range oldSpec {
		if _, ok := spec[k]; !ok && k != "template" {
			return false
		}
	}
	return true
}

// policyNames lists the policies of violations once each, for logs.
func policyNames(vs []policies.Violation) []string {
	var names []string
	for _, v := range vs {
		if !slices.Contains(names, v.Policy) {
			names = append(names, v.Policy)
		}
	}
	return names
}
