package webhook

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/webhook/certs"
)

// selfManagedCerts keeps rollout-guard's own CA and serving certificate, for
// installs without cert-manager. The Secret is the source of truth, shared
// by every webhook replica: whoever finds it missing or near expiry renews
// it, and a write conflict means another replica did, so the winner's
// certificates are used. Each replica writes them to its certificate
// directory (the server reloads them) and publishes the CA in the caBundle
// of the webhook configurations.
type selfManagedCerts struct {
	client    client.Client
	cfg       config.SelfManagedCerts
	namespace string
	certDir   string
	now       func() time.Time
}

// NeedLeaderElection: every replica must keep its own files current.
func (s *selfManagedCerts) NeedLeaderElection() bool { return false }

// Start re-checks the certificates periodically until ctx ends.
func (s *selfManagedCerts) Start(ctx context.Context) error {
	log := logf.FromContext(ctx)
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := s.sync(ctx); err != nil {
			log.Error(err, "Cannot renew self-managed certificates; will retry", "secret", s.cfg.SecretName)
		}
	}, 10*time.Minute)
	return nil
}

// sync makes sure a valid bundle exists, is on disk and is published.
func (s *selfManagedCerts) sync(ctx context.Context) error {
	bundle, err := s.ensureSecret(ctx)
	if err != nil {
		return err
	}
	if err := s.writeFiles(bundle); err != nil {
		return err
	}
	return s.publishCA(ctx, bundle.CA.CertPEM)
}

func (s *selfManagedCerts) ensureSecret(ctx context.Context) (certs.Bundle, error) {
	key := client.ObjectKey{Namespace: s.namespace, Name: s.cfg.SecretName}
	var secret corev1.Secret
	err := s.client.Get(ctx, key, &secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return certs.Bundle{}, fmt.Errorf("get Secret %s: %w", key, err)
	}
	exists := err == nil
	current := certs.Bundle{
		CA:      certs.KeyPair{CertPEM: secret.Data[certs.CAFile], KeyPEM: secret.Data[certs.CAKeyFile]},
		Serving: certs.KeyPair{CertPEM: secret.Data[certs.CertFile], KeyPEM: secret.Data[certs.KeyFile]},
	}
	if exists && !certs.NeedsRenewal(current.Serving, s.cfg.RenewBefore.Duration, s.now()) && !certs.NeedsRenewal(current.CA, s.cfg.RenewBefore.Duration, s.now()) {
		return current, nil
	}
	fresh, err := certs.NewBundle(s.cfg.Hosts, s.cfg.Validity.Duration, s.now())
	if err != nil {
		return certs.Bundle{}, err
	}
	secret.Namespace, secret.Name = s.namespace, s.cfg.SecretName
	if !exists {
		// a Secret's type cannot change: one the chart made keeps its own
		secret.Type = corev1.SecretTypeTLS
	}
	secret.Data = map[string][]byte{
		certs.CAFile: fresh.CA.CertPEM, certs.CAKeyFile: fresh.CA.KeyPEM,
		certs.CertFile: fresh.Serving.CertPEM, certs.KeyFile: fresh.Serving.KeyPEM,
	}
	if exists {
		err = s.client.Update(ctx, &secret)
	} else {
		err = s.client.Create(ctx, &secret)
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		// Another replica renewed first: use its certificates.
		return s.ensureSecret(ctx)
	}
	if err != nil {
		return certs.Bundle{}, fmt.Errorf("store certificates in Secret %s: %w", key, err)
	}
	logf.FromContext(ctx).Info("Issued self-managed webhook certificates", "secret", key, "hosts", s.cfg.Hosts)
	return fresh, nil
}

func (s *selfManagedCerts) writeFiles(b certs.Bundle) error {
	if on, err := certs.ReadDir(s.certDir); err == nil && string(on.Serving.CertPEM) == string(b.Serving.CertPEM) {
		return nil
	}
	if err := b.WriteDir(s.certDir); err != nil {
		return err
	}
	// The CA key stays in the Secret; the server needs only the serving pair.
	return os.Remove(filepath.Join(s.certDir, certs.CAKeyFile))
}

// publishCA sets the caBundle of every webhook in both configurations. Replicas start together and publish the
// same CA, so a conflicting update is read again and retried rather than failing this replica's start.
func (s *selfManagedCerts) publishCA(ctx context.Context, ca []byte) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error { return s.setCABundles(ctx, ca) })
}

// setCABundles sets the caBundle of both configurations, each updated only when it changes, so a retry after a
// conflict on the second does not write the first again.
func (s *selfManagedCerts) setCABundles(ctx context.Context, ca []byte) error {
	key := client.ObjectKey{Name: s.cfg.ConfigurationName}
	var m admissionregistrationv1.MutatingWebhookConfiguration
	if err := s.client.Get(ctx, key, &m); err != nil {
		return fmt.Errorf("get MutatingWebhookConfiguration %s: %w", key.Name, err)
	}
	configs := make([]*admissionregistrationv1.WebhookClientConfig, len(m.Webhooks))
	for i := range m.Webhooks {
		configs[i] = &m.Webhooks[i].ClientConfig
	}
	if err := s.setCABundle(ctx, &m, configs, ca); err != nil {
		return err
	}
	var v admissionregistrationv1.ValidatingWebhookConfiguration
	if err := s.client.Get(ctx, key, &v); err != nil {
		return fmt.Errorf("get ValidatingWebhookConfiguration %s: %w", key.Name, err)
	}
	configs = make([]*admissionregistrationv1.WebhookClientConfig, len(v.Webhooks))
	for i := range v.Webhooks {
		configs[i] = &v.Webhooks[i].ClientConfig
	}
	return s.setCABundle(ctx, &v, configs, ca)
}

// setCABundle writes ca into configs, which belong to obj, and updates obj
// when any of them changed.
func (s *selfManagedCerts) setCABundle(ctx context.Context, obj client.Object, configs []*admissionregistrationv1.WebhookClientConfig, ca []byte) error {
	changed := false
	for _, cc := range configs {
		if string(cc.CABundle) != string(ca) {
			cc.CABundle, changed = ca, true
		}
	}
	if !changed {
		return nil
	}
	if err := s.client.Update(ctx, obj); err != nil {
		return fmt.Errorf("update caBundle of %s: %w", obj.GetName(), err)
	}
	return nil
}
