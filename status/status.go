package status

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rollout-guard/rollout-guard/policies"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
	"github.com/rollout-guard/rollout-guard/rollback"
)

// Report is one workload's story.
type Report struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Revisions, newest first.
	Revisions  []Revision           `json:"revisions"`
	LastAction *rollback.LastAction `json:"lastAction,omitempty"`
	// Events are rollout-guard's Events on the workload still kept by the API server (an hour by default), newest
	// first; the last action outlives them.
	Events     []Event     `json:"events"`
	Analyses   []string    `json:"analyses,omitempty"`
	Exceptions []Exception `json:"exceptions"`
	Verdict    Verdict     `json:"verdict"`
}

// Revision is one ReplicaSet or ControllerRevision of the workload.
type Revision struct {
	Revision int64    `json:"revision"`
	Name     string   `json:"name"`
	Images   []string `json:"images"`
	Current  bool     `json:"current"`
	// Ready and Replicas are a ReplicaSet's; a ControllerRevision has none.
	Ready    *int32 `json:"ready,omitempty"`
	Replicas *int32 `json:"replicas,omitempty"`
	// KnownGood and RolledBack are when the watcher marked the revision, "" when it did not.
	KnownGood  string `json:"knownGood,omitempty"`
	RolledBack string `json:"rolledBack,omitempty"`
}

// Event is one of rollout-guard's Events.
type Event struct {
	Time    string `json:"time"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// Exception is a RolloutPolicyException in force for the workload.
type Exception struct {
	Name     string   `json:"name"`
	Policies []string `json:"policies"`
	Reason   string   `json:"reason"`
	Expires  string   `json:"expires"`
}

// Verdict is what the cluster's webhooks say of the workload's template now.
type Verdict struct {
	Admitted bool     `json:"admitted"`
	Denial   string   `json:"denial,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	// Error says why there is no verdict (the webhook is down, RBAC), "" when there is one.
	Error string `json:"error,omitempty"`
}

// Warnings collects the API server's warnings, as a rest.Config's WarningHandler, for the dry run's verdict.
type Warnings struct {
	mu   sync.Mutex
	seen []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *Warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

func (w *Warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.seen
	w.seen = nil
	return out
}

// ParseRef reads KIND/NAME as kubectl names workloads: deployment, deploy, statefulset, sts, daemonset, ds, in the
// singular or the plural, with or without the group.
func ParseRef(ref string) (kind, name string, err error) {
	k, n, ok := strings.Cut(ref, "/")
	if !ok || n == "" {
		return "", "", fmt.Errorf("%q: want KIND/NAME, e.g. deployment/web", ref)
	}
	switch strings.TrimSuffix(strings.ToLower(k), ".apps") {
	case "deployment", "deployments", "deploy":
		return "Deployment", n, nil
	case "statefulset", "statefulsets", "sts":
		return "StatefulSet", n, nil
	case "daemonset", "daemonsets", "ds":
		return "DaemonSet", n, nil
	}
	return "", "", fmt.Errorf("%q: rollout-guard guards Deployments, StatefulSets and DaemonSets", k)
}

// Gather reads the workload's story. c must report the API server's warnings to warnings.
func Gather(ctx context.Context, c client.Client, warnings *Warnings, kind, namespace, name string) (Report, error) {
	r := Report{Kind: kind, Namespace: namespace, Name: name, Events: []Event{}, Exceptions: []Exception{}}
	var w client.Object
	switch kind {
	case "Deployment":
		w = &appsv1.Deployment{}
	case "StatefulSet":
		w = &appsv1.StatefulSet{}
	default:
		w = &appsv1.DaemonSet{}
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, w); err != nil {
		return r, fmt.Errorf("get %s %s/%s: %w", kind, namespace, name, err)
	}
	var err error
	if r.Revisions, err = revisions(ctx, c, w); err != nil {
		return r, err
	}
	if raw, ok := w.GetAnnotations()[rollback.AnnotationLastAction]; ok {
		var la rollback.LastAction
		if json.Unmarshal([]byte(raw), &la) == nil {
			r.LastAction = &la
		}
	}
	for a := range strings.SplitSeq(w.GetAnnotations()[rollback.AnnotationAnalysis], ",") {
		if a = strings.TrimSpace(a); a != "" {
			r.Analyses = append(r.Analyses, a)
		}
	}
	if r.Events, err = events(ctx, c, kind, w); err != nil {
		return r, err
	}
	if r.Exceptions, err = exceptions(ctx, c, kind, w); err != nil {
		return r, err
	}
	r.Verdict = verdict(ctx, c, warnings, w)
	return r, nil
}

func revisions(ctx context.Context, c client.Client, w client.Object) ([]Revision, error) {
	var out []Revision
	owned := func(o metav1.Object) bool {
		ref := metav1.GetControllerOf(o)
		return ref != nil && ref.UID == w.GetUID()
	}
	if d, ok := w.(*appsv1.Deployment); ok {
		var sets appsv1.ReplicaSetList
		if err := c.List(ctx, &sets, client.InNamespace(d.Namespace)); err != nil {
			return nil, fmt.Errorf("list ReplicaSets of %s: %w", d.Name, err)
		}
		for i := range sets.Items {
			rs := &sets.Items[i]
			if !owned(rs) {
				continue
			}
			n, _ := strconv.ParseInt(rs.Annotations["deployment.kubernetes.io/revision"], 10, 64)
			rev := Revision{Revision: n, Name: rs.Name, Images: images(rs.Spec.Template.Spec), Ready: &rs.Status.ReadyReplicas, Replicas: rs.Spec.Replicas,
				Current:   rs.Annotations["deployment.kubernetes.io/revision"] == d.Annotations["deployment.kubernetes.io/revision"],
				KnownGood: rs.Annotations[rollback.AnnotationKnownGood], RolledBack: rs.Annotations[rollback.AnnotationRolledBack]}
			out = append(out, rev)
		}
	} else {
		var crs appsv1.ControllerRevisionList
		if err := c.List(ctx, &crs, client.InNamespace(w.GetNamespace())); err != nil {
			return nil, fmt.Errorf("list ControllerRevisions of %s: %w", w.GetName(), err)
		}
		var newest int64
		for i := range crs.Items {
			cr := &crs.Items[i]
			if !owned(cr) {
				continue
			}
			var data struct {
				Spec struct {
					Template corev1.PodTemplateSpec `json:"template"`
				} `json:"spec"`
			}
			_ = json.Unmarshal(cr.Data.Raw, &data)
			out = append(out, Revision{Revision: cr.Revision, Name: cr.Name, Images: images(data.Spec.Template.Spec),
				KnownGood: cr.Annotations[rollback.AnnotationKnownGood], RolledBack: cr.Annotations[rollback.AnnotationRolledBack]})
			newest = max(newest, cr.Revision)
		}
		update := ""
		if ss, ok := w.(*appsv1.StatefulSet); ok {
			update = ss.Status.UpdateRevision
		}
		for i := range out {
			out[i].Current = out[i].Name == update || (update == "" && out[i].Revision == newest)
		}
	}
	slices.SortFunc(out, func(a, b Revision) int { return cmp.Compare(b.Revision, a.Revision) })
	return out, nil
}

func images(spec corev1.PodSpec) []string {
	var out []string
	for _, c := range spec.Containers {
		out = append(out, c.Image)
	}
	return out
}

func events(ctx context.Context, c client.Client, kind string, w client.Object) ([]Event, error) {
	var list corev1.EventList
	if err := c.List(ctx, &list, client.InNamespace(w.GetNamespace())); err != nil {
		return nil, fmt.Errorf("list Events of %s: %w", w.GetName(), err)
	}
	out := []Event{}
	for _, e := range list.Items {
		if e.InvolvedObject.Kind != kind || e.InvolvedObject.Name != w.GetName() || !strings.HasPrefix(e.Reason, "RolloutGuard") {
			continue
		}
		at := e.LastTimestamp.Time
		if at.IsZero() {
			at = e.EventTime.Time
		}
		out = append(out, Event{Time: at.UTC().Format(time.RFC3339), Reason: e.Reason, Message: e.Message})
	}
	slices.SortStableFunc(out, func(a, b Event) int { return strings.Compare(b.Time, a.Time) })
	return out, nil
}

func exceptions(ctx context.Context, c client.Client, kind string, w client.Object) ([]Exception, error) {
	var list v1alpha1.RolloutPolicyExceptionList
	if err := c.List(ctx, &list, client.InNamespace(w.GetNamespace())); err != nil {
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			return []Exception{}, nil // the CRD is not installed: no exception can be in force
		}
		return nil, fmt.Errorf("list RolloutPolicyExceptions: %w", err)
	}
	out := []Exception{}
	now := time.Now()
	for i := range list.Items {
		e, err := list.Items[i].ToException()
		if err != nil || !now.Before(e.Expires) || !e.Covers(policies.Workload{Kind: kind, Name: w.GetName(), Labels: w.GetLabels()}) {
			continue
		}
		out = append(out, Exception{Name: e.Name, Policies: e.Policies, Reason: e.Reason, Expires: e.Expires.UTC().Format(time.RFC3339)})
	}
	return out, nil
}

// verdict asks the cluster's webhooks about the workload's template now: a server-side dry-run create of the same
// object under the same name is mutated and validated in full, as a new apply would be, and then fails with
// AlreadyExists, which is after admission said yes. Nothing is written.
func verdict(ctx context.Context, c client.Client, warnings *Warnings, w client.Object) Verdict {
	probe, ok := w.DeepCopyObject().(client.Object)
	if !ok {
		return Verdict{Error: "cannot copy the workload"}
	}
	probe.SetResourceVersion("")
	probe.SetUID("")
	probe.SetManagedFields(nil)
	probe.SetCreationTimestamp(metav1.Time{})
	probe.SetGeneration(0)
	warnings.take()
	err := c.Create(ctx, probe, client.DryRunAll, client.FieldOwner("rollout-guard-status"))
	v := Verdict{Warnings: warnings.take()}
	switch {
	case err == nil, apierrors.IsAlreadyExists(err):
		v.Admitted = true
	case strings.Contains(err.Error(), "rollout-guard denied"):
		v.Denial = strings.TrimPrefix(err.Error(), "admission webhook \"validate.rollout-guard.io\" denied the request: ")
	default:
		v.Error = err.Error()
	}
	return v
}

// Text writes the report for a person.
func (r Report) Text(out io.Writer) {
	fmt.Fprintf(out, "%s %s/%s\n\n", r.Kind, r.Namespace, r.Name)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tIMAGES\tREADY\tWATCHER")
	for _, rev := range r.Revisions {
		n := strconv.FormatInt(rev.Revision, 10)
		if rev.Current {
			n += " (current)"
		}
		ready := "-"
		if rev.Replicas != nil && rev.Ready != nil {
			ready = fmt.Sprintf("%d/%d", *rev.Ready, *rev.Replicas)
		}
		var marks []string
		if rev.KnownGood != "" {
			marks = append(marks, "known-good "+rev.KnownGood)
		}
		if rev.RolledBack != "" {
			marks = append(marks, "rolled back "+rev.RolledBack)
		}
		if len(marks) == 0 {
			marks = append(marks, "-")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", n, strings.Join(rev.Images, ","), ready, strings.Join(marks, "; "))
	}
	_ = tw.Flush()
	fmt.Fprintln(out)
	if la := r.LastAction; la != nil {
		fmt.Fprintf(out, "Last action: %s", la.Action)
		if la.Cause != "" {
			fmt.Fprintf(out, " (%s)", la.Cause)
		}
		fmt.Fprintf(out, " at %s: %s\n", la.Time, la.Message)
	} else {
		fmt.Fprintln(out, "Last action: none")
	}
	if len(r.Analyses) > 0 {
		fmt.Fprintf(out, "Analyses: %s\n", strings.Join(r.Analyses, ", "))
	}
	fmt.Fprintln(out, "Events (rollout-guard's, newest first):")
	if len(r.Events) == 0 {
		fmt.Fprintln(out, "  none kept (Events expire; the last action stays)")
	}
	for _, e := range r.Events {
		fmt.Fprintf(out, "  %s  %s  %s\n", e.Time, e.Reason, e.Message)
	}
	fmt.Fprintln(out, "Exceptions in force:")
	if len(r.Exceptions) == 0 {
		fmt.Fprintln(out, "  none")
	}
	for _, e := range r.Exceptions {
		fmt.Fprintf(out, "  %s waives %s until %s: %s\n", e.Name, strings.Join(e.Policies, ", "), e.Expires, e.Reason)
	}
	switch v := r.Verdict; {
	case v.Error != "":
		fmt.Fprintf(out, "Policies now: no verdict: %s\n", v.Error)
	case v.Admitted:
		fmt.Fprintf(out, "Policies now: admitted, %d warning(s)\n", len(v.Warnings))
	default:
		fmt.Fprintf(out, "Policies now: DENIED\n  %s\n", strings.ReplaceAll(v.Denial, "\n", "\n  "))
	}
	for _, w := range r.Verdict.Warnings {
		fmt.Fprintf(out, "  warning: %s\n", w)
	}
}
