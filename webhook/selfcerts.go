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
//
// A renewal costs no request: the serving certificate is renewed under the
// same CA while the CA outlives it (the CA lives twice as long), so nothing
// the API server trusts changes. When the CA itself is renewed, or the Secret
// was deleted, the caBundle keeps the earlier CA beside the new one (see
// certs.MergeCABundle), and no replica serves a certificate of the new CA
// until publishDelay after it was issued, so the API servers trust it first.
// Every replica reads the Secret each syncPeriod, so all of them move on
// within one period.
type selfManagedCerts struct {
	client    client.Client
	cfg       config.SelfManagedCerts
	namespace string
	certDir   string
	now       func() time.Time
}

// NeedLeaderElection: every replica must keep its own files current.
func (s *selfManagedCerts) NeedLeaderElection() bool { return false }

// syncPeriod is how often each replica reads the Secret: one GET, and two of the webhook configurations. A replica
// serves a renewed certificate at most this long after another replica stored it.
const syncPeriod = 15 * time.Second

// publishDelay is how long after a certificate is issued a replica waits before serving it when serving files
// already exist: long enough for every API server to load a caBundle published beside it.
const publishDelay = 10 * time.Second

// annotationIssued on the Secret is when its certificates were issued.
const annotationIssued = "rollout-guard.io/issued-at"

// Start re-checks the certificates periodically until ctx ends.
func (s *selfManagedCerts) Start(ctx context.Context) error {
	log := logf.FromContext(ctx)
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := s.sync(ctx); err != nil {
			log.Error(err, "Cannot renew self-managed certificates; will retry", "secret", s.cfg.SecretName)
		}
	}, syncPeriod)
	return nil
}

// sync makes sure a valid bundle exists and is published, then serves it: at once when nothing is served yet (the
// server cannot start without it), otherwise once the API servers have had publishDelay to trust its CA.
func (s *selfManagedCerts) sync(ctx context.Context) error {
	bundle, issued, err := s.ensureSecret(ctx)
	if err != nil {
		return err
	}
	if err := s.publishCA(ctx, bundle.CA.CertPEM); err != nil {
		return err
	}
	served, err := os.ReadFile(filepath.Join(s.certDir, certs.CertFile))
	if err == nil && string(served) == string(bundle.Serving.CertPEM) {
		return nil
	}
	if err == nil && s.now().Sub(issued) < publishDelay {
		logf.FromContext(ctx).V(1).Info("New certificates are served once the API servers trust their CA", "issuedAt", issued)
		return nil
	}
	return s.writeFiles(bundle)
}

// ensureSecret returns the Secret's bundle, renewing what is near expiry, and when it was issued.
func (s *selfManagedCerts) ensureSecret(ctx context.Context) (certs.Bundle, time.Time, error) {
	key := client.ObjectKey{Namespace: s.namespace, Name: s.cfg.SecretName}
	var secret corev1.Secret
	err := s.client.Get(ctx, key, &secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return certs.Bundle{}, time.Time{}, fmt.Errorf("get Secret %s: %w", key, err)
	}
	exists := err == nil
	current := certs.Bundle{
		CA:      certs.KeyPair{CertPEM: secret.Data[certs.CAFile], KeyPEM: secret.Data[certs.CAKeyFile]},
		Serving: certs.KeyPair{CertPEM: secret.Data[certs.CertFile], KeyPEM: secret.Data[certs.KeyFile]},
	}
	if exists && !certs.NeedsRenewal(current.Serving, s.cfg.RenewBefore.Duration, s.now()) && !certs.NeedsRenewal(current.CA, s.cfg.RenewBefore.Duration, s.now()) {
		// unannotated (an older release, or made by hand): issued long enough ago
		issued, _ := time.Parse(time.RFC3339, secret.Annotations[annotationIssued])
		return current, issued, nil
	}
	fresh, err := s.renew(current, exists)
	if err != nil {
		return certs.Bundle{}, time.Time{}, err
	}
	secret.Namespace, secret.Name = s.namespace, s.cfg.SecretName
	if !exists {
		// a Secret's type cannot change: one the chart made keeps its own
		secret.Type = corev1.SecretTypeTLS
	}
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	secret.Annotations[annotationIssued] = s.now().UTC().Format(time.RFC3339)
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
		return certs.Bundle{}, time.Time{}, fmt.Errorf("store certificates in Secret %s: %w", key, err)
	}
	logf.FromContext(ctx).Info("Issued self-managed webhook certificates", "secret", key, "hosts", s.cfg.Hosts,
		"newCA", string(fresh.CA.CertPEM) != string(current.CA.CertPEM))
	return fresh, s.now(), nil
}

// renew issues a serving certificate under the current CA while the CA outlives it, so that what clients trust does
// not change; otherwise a new CA too (see certs.NewBundle).
func (s *selfManagedCerts) renew(current certs.Bundle, exists bool) (certs.Bundle, error) {
	validity := s.cfg.Validity.Duration
	if exists && certs.Outlives(current.CA, s.now().Add(validity)) {
		serving, err := certs.NewServing(current.CA, s.cfg.Hosts, validity, s.now())
		if err == nil {
			return certs.Bundle{CA: current.CA, Serving: serving}, nil
		}
		// a CA whose key cannot sign is replaced
	}
	return certs.NewBundle(s.cfg.Hosts, validity, s.now())
}

func (s *selfManagedCerts) writeFiles(b certs.Bundle) error {
	if err := b.WriteDir(s.certDir); err != nil {
		return err
	}
	// The CA key stays in the Secret; the server needs only the serving pair.
	return os.Remove(filepath.Join(s.certDir, certs.CAKeyFile))
}

// publishCA merges ca into the caBundle of every webhook in both configurations, keeping earlier CAs that have not
// expired. Replicas start together and publish the same CA, so a conflicting update is read again and retried
// rather than failing this replica's start.
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
		if merged := certs.MergeCABundle(ca, cc.CABundle, s.now()); string(cc.CABundle) != string(merged) {
			cc.CABundle, changed = merged, true
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
