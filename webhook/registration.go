package webhook

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/webhook/certs"
)

// ConfigurationName names both webhook configurations.
const ConfigurationName = "rollout-guard"

// Configurations are the webhook configurations for a client config (a
// Service in a cluster, a URL in dev mode). The Helm chart renders the same
// rules; a test keeps the two in step.
func Configurations(cc admissionregistrationv1.WebhookClientConfig, opts config.Options, failurePolicy admissionregistrationv1.FailurePolicyType) (*admissionregistrationv1.MutatingWebhookConfiguration, *admissionregistrationv1.ValidatingWebhookConfiguration) {
	nsSelector := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: opts.SkippedNamespaces(),
	}}}
	workloads := admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"apps"}, APIVersions: []string{"v1"},
			Resources: []string{"deployments", "statefulsets", "daemonsets"}, Scope: ptr.To(admissionregistrationv1.NamespacedScope),
		},
	}
	// A scale changes replicas without the workload's spec passing through admission: validated so that a rollout
	// setting harmless at 1 replica (maxUnavailable: 100%) cannot be scaled into an outage.
	scale := admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"apps"}, APIVersions: []string{"v1"},
			Resources: []string{"deployments/scale", "statefulsets/scale"}, Scope: ptr.To(admissionregistrationv1.NamespacedScope),
		},
	}
	rolloutPolicies := admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"rollout-guard.io"}, APIVersions: []string{"v1alpha1"},
			Resources: []string{"rolloutpolicies", "rolloutanalyses"}, Scope: ptr.To(admissionregistrationv1.ClusterScope),
		},
	}
	exceptions := admissionregistrationv1.RuleWithOperations{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
		Rule: admissionregistrationv1.Rule{
			APIGroups: []string{"rollout-guard.io"}, APIVersions: []string{"v1alpha1"},
			Resources: []string{"rolloutpolicyexceptions"}, Scope: ptr.To(admissionregistrationv1.NamespacedScope),
		},
	}
	mcc, vcc := *cc.DeepCopy(), *cc.DeepCopy()
	if mcc.URL != nil {
		mcc.URL, vcc.URL = ptr.To(*cc.URL+MutatePath), ptr.To(*cc.URL+ValidatePath)
	} else if mcc.Service != nil {
		mcc.Service.Path, vcc.Service.Path = ptr.To(MutatePath), ptr.To(ValidatePath)
	}
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName, Labels: map[string]string{"app.kubernetes.io/name": "rollout-guard"}},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "mutate.rollout-guard.io",
			ClientConfig:            mcc,
			Rules:                   []admissionregistrationv1.RuleWithOperations{workloads},
			NamespaceSelector:       nsSelector,
			FailurePolicy:           ptr.To(admissionregistrationv1.Ignore),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](2),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
		}},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName, Labels: map[string]string{"app.kubernetes.io/name": "rollout-guard"}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "validate.rollout-guard.io",
			ClientConfig:            vcc,
			Rules:                   []admissionregistrationv1.RuleWithOperations{workloads, scale, rolloutPolicies, exceptions},
			NamespaceSelector:       nsSelector,
			FailurePolicy:           ptr.To(failurePolicy),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](3),
			AdmissionReviewVersions: []string{"v1"},
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
		}},
	}
	return mutating, validating
}

// devRegistration registers both webhook configurations with a URL on the
// local cluster once the webhook server is serving.
type devRegistration struct {
	client client.Client
	opts   config.Options
	ready  healthz.Checker
}

// NeedLeaderElection: every dev webhook registers itself.
func (d *devRegistration) NeedLeaderElection() bool { return false }

func (d *devRegistration) Start(ctx context.Context) error {
	log := logf.FromContext(ctx)
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	if err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		return d.ready(req) == nil, nil
	}); err != nil {
		return nil
	}
	bundle, err := certs.ReadDir(d.opts.Webhook.CertDir)
	if err != nil {
		return fmt.Errorf("dev registration: %w", err)
	}
	host := d.opts.Webhook.Host
	if host == "" {
		host = "127.0.0.1"
	}
	url := "https://" + host + ":" + strconv.Itoa(d.opts.Webhook.Port)
	mutating, validating := Configurations(admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: bundle.CA.CertPEM},
		d.opts, admissionregistrationv1.FailurePolicyType(d.opts.Dev.FailurePolicy))
	if err := upsert(ctx, d.client, mutating, func(live *admissionregistrationv1.MutatingWebhookConfiguration) {
		live.Webhooks = mutating.Webhooks
	}); err != nil {
		return fmt.Errorf("dev registration: %w", err)
	}
	if err := upsert(ctx, d.client, validating, func(live *admissionregistrationv1.ValidatingWebhookConfiguration) {
		live.Webhooks = validating.Webhooks
	}); err != nil {
		return fmt.Errorf("dev registration: %w", err)
	}
	log.Info("Registered webhook configurations", "url", url, "certDir", filepath.Clean(d.opts.Webhook.CertDir))
	return nil
}

// upsert creates want, or updates the live object with update when it exists.
func upsert[T client.Object](ctx context.Context, c client.Client, want T, update func(live T)) error {
	live := want.DeepCopyObject().(T)
	err := c.Get(ctx, client.ObjectKeyFromObject(want), live)
	if apierrors.IsNotFound(err) {
		if err := c.Create(ctx, want); err != nil {
			return fmt.Errorf("create %s: %w", want.GetName(), err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get %s: %w", want.GetName(), err)
	}
	update(live)
	if err := c.Update(ctx, live); err != nil {
		return fmt.Errorf("update %s: %w", want.GetName(), err)
	}
	return nil
}
