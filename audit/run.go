package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies"
	"github.com/rollout-guard/rollout-guard/policies/check"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// Result is one audit: the findings of every workload judged, the workloads audited per namespace (so that a
// namespace whose workloads are all clean still has a report, saying so), and what could not be judged.
type Result struct {
	Findings []check.Finding
	// Workloads counts the workloads audited in each namespace.
	Workloads map[string]int
	// UIDs of the workloads judged, by Ref, for the reports' resource references.
	UIDs map[Ref]types.UID
	// Errors: RolloutPolicies or RolloutPolicyExceptions left out because they cannot be compiled, and workloads
	// that could not be judged. The rest of the audit stands.
	Errors []error
}

// Ref names a workload.
type Ref struct{ Kind, Namespace, Name string }

// listPage is how many objects one List returns: a cluster of any size is read in bounded pieces.
const listPage = 500

// judgeBatch is how many workloads are judged between two rests of a paced audit.
const judgeBatch = 50

// Pace spreads an audit over time: after each piece of work (a page listed, a batch of workloads judged) it rests
// Rest times as long as the piece took, so that an audit takes at most 1/(1+Rest) of a core, and leaves the API
// server room between its pages. The zero Pace never rests: what the CLI wants.
type Pace struct{ Rest float64 }

func (p Pace) rest(ctx context.Context, since time.Time) error {
	if p.Rest <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(float64(time.Since(since)) * p.Rest)):
		return nil
	}
}

// Run audits namespace (every namespace when empty) with the built-in policies configured by opts, and the
// cluster's RolloutPolicies and RolloutPolicyExceptions. The namespaces the webhooks leave alone (skipped or
// labelled disabled) are left out, as admission leaves them.
func Run(ctx context.Context, c client.Reader, opts config.Options, namespace string, pace Pace) (Result, error) {
	res := Result{Workloads: map[string]int{}, UIDs: map[Ref]types.UID{}}
	setup := check.Setup{Client: check.ClientLive}
	var rps v1alpha1.RolloutPolicyList
	if err := c.List(ctx, &rps); err != nil && !meta.IsNoMatchError(err) {
		return res, fmt.Errorf("list RolloutPolicies: %w", err)
	}
	for i := range rps.Items {
		// A policy admission refuses to compile is not in force there either; it must not stop the audit of the rest.
		if err := compiles(ctx, &rps.Items[i]); err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("RolloutPolicy %s left out of the audit: %w", rps.Items[i].Name, err))
			continue
		}
		setup.Policies = append(setup.Policies, &rps.Items[i])
	}
	var exceptions v1alpha1.RolloutPolicyExceptionList
	if err := c.List(ctx, &exceptions, client.InNamespace(namespace)); err != nil && !meta.IsNoMatchError(err) {
		return res, fmt.Errorf("list RolloutPolicyExceptions: %w", err)
	}
	for i := range exceptions.Items {
		e := &exceptions.Items[i]
		if _, err := e.ToException(); err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("RolloutPolicyException %s/%s left out of the audit: %w", e.Namespace, e.Name, err))
			continue
		}
		setup.Exceptions = append(setup.Exceptions, e)
	}
	checker, err := check.New(ctx, opts, setup)
	if err != nil {
		return res, err
	}
	docs, err := workloads(ctx, c, namespace, opts.SkippedNamespaces(), opts.Policies.DisableLabel, res.UIDs, pace)
	if err != nil {
		return res, err
	}
	start := time.Now()
	for i, d := range docs {
		if i > 0 && i%judgeBatch == 0 {
			if err := pace.rest(ctx, start); err != nil {
				return res, err
			}
			start = time.Now()
		}
		f, err := checker.Check(ctx, d)
		if err != nil {
			res.Errors = append(res.Errors, err)
			continue
		}
		if f != nil {
			res.Findings = append(res.Findings, *f)
			res.Workloads[f.Namespace]++
		}
	}
	return res, nil
}

func compiles(ctx context.Context, rp *v1alpha1.RolloutPolicy) error {
	p, err := rp.ToPolicy()
	if err != nil {
		return err
	}
	if _, _, err := rp.Selectors(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return policies.Check(ctx, p)
}

// workloads reads the cluster's Deployments, StatefulSets and DaemonSets, page by page, as documents that know
// their namespace's labels, leaving out the namespaces the webhooks leave alone.
func workloads(ctx context.Context, c client.Reader, namespace string, skipped []string, disableLabel string, uids map[Ref]types.UID, pace Pace) ([]check.Document, error) {
	var namespaces corev1.NamespaceList
	if err := c.List(ctx, &namespaces); err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	nsLabels := map[string]map[string]string{}
	for _, ns := range namespaces.Items {
		if !slices.Contains(skipped, ns.Name) && (disableLabel == "" || ns.Labels[disableLabel] != "disabled") {
			nsLabels[ns.Name] = ns.Labels
			if nsLabels[ns.Name] == nil {
				nsLabels[ns.Name] = map[string]string{}
			}
		}
	}
	var docs []check.Document
	add := func(kind string, obj client.Object) error {
		labels, ok := nsLabels[obj.GetNamespace()]
		if !ok {
			return nil
		}
		uids[Ref{kind, obj.GetNamespace(), obj.GetName()}] = obj.GetUID()
		obj.SetManagedFields(nil)
		data, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return err
		}
		m["apiVersion"], m["kind"] = "apps/v1", kind
		delete(m, "status")
		if data, err = json.Marshal(m); err != nil {
			return err
		}
		docs = append(docs, check.Document{File: obj.GetNamespace(), Index: len(docs) + 1, Data: data, NamespaceLabels: labels})
		return nil
	}
	for _, list := range []client.ObjectList{&appsv1.DeploymentList{}, &appsv1.StatefulSetList{}, &appsv1.DaemonSetList{}} {
		for cont := ""; ; {
			start := time.Now()
			if err := c.List(ctx, list, client.InNamespace(namespace), client.Limit(listPage), client.Continue(cont)); err != nil {
				return nil, fmt.Errorf("list workloads: %w", err)
			}
			var err error
			switch l := list.(type) {
			case *appsv1.DeploymentList:
				for i := range l.Items {
					err = errors.Join(err, add("Deployment", &l.Items[i]))
				}
			case *appsv1.StatefulSetList:
				for i := range l.Items {
					err = errors.Join(err, add("StatefulSet", &l.Items[i]))
				}
			case *appsv1.DaemonSetList:
				for i := range l.Items {
					err = errors.Join(err, add("DaemonSet", &l.Items[i]))
				}
			}
			if err != nil {
				return nil, err
			}
			if err := pace.rest(ctx, start); err != nil {
				return nil, err
			}
			if cont = list.GetContinue(); cont == "" {
				break
			}
		}
	}
	return docs, nil
}
