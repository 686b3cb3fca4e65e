package webhook

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/webhook/certs"
)

// The rotation logic, with the clock moved: issue; keep while valid; renew the serving certificate under the same CA
// while the CA outlives it; renew the CA when it does not, publishing it beside the old one; serve a new
// certificate only once its CA has been published for publishDelay. The real-node apply loop covers the same code
// against real API servers, during a forced rotation.
func TestSelfManagedCertsRotate(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "rg"}, Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "m"}}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "rg"}, Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "v"}}},
	).Build()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &selfManagedCerts{
		client: c, namespace: "rollout-guard", certDir: t.TempDir(), now: func() time.Time { return now },
		cfg: config.SelfManagedCerts{Enabled: true, SecretName: "tls", Hosts: []string{"rg.rollout-guard.svc"}, ConfigurationName: "rg",
			Validity: metav1.Duration{Duration: 90 * 24 * time.Hour}, RenewBefore: metav1.Duration{Duration: 10 * 24 * time.Hour}},
	}
	ctx := context.Background()
	published := func() string {
		var m admissionregistrationv1.MutatingWebhookConfiguration
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: "rg"}, &m); err != nil {
			t.Fatal(err)
		}
		if err := c.Get(ctx, client.ObjectKey{Name: "rg"}, &v); err != nil {
			t.Fatal(err)
		}
		if string(m.Webhooks[0].ClientConfig.CABundle) != string(v.Webhooks[0].ClientConfig.CABundle) {
			t.Fatal("the two configurations publish different CAs")
		}
		return string(m.Webhooks[0].ClientConfig.CABundle)
	}
	secret := func() certs.Bundle {
		var sec corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: "rollout-guard", Name: "tls"}, &sec); err != nil {
			t.Fatal(err)
		}
		return certs.Bundle{CA: certs.KeyPair{CertPEM: sec.Data[certs.CAFile]}, Serving: certs.KeyPair{CertPEM: sec.Data[certs.CertFile]}}
	}
	served := func() string {
		onDisk, err := os.ReadFile(filepath.Join(s.certDir, certs.CertFile))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(s.certDir, certs.CAKeyFile)); err == nil {
			t.Fatal("the CA key was written to the certificate directory")
		}
		return string(onDisk)
	}
	sync := func(when string) {
		t.Helper()
		if err := s.sync(ctx); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	trusts := func(ca string) bool { return strings.Contains(published(), strings.TrimSpace(ca)) }

	sync("first start")
	first := secret()
	if served() != string(first.Serving.CertPEM) || published() != string(first.CA.CertPEM) {
		t.Fatal("the first start did not serve at once and publish its CA")
	}
	now = now.Add(30 * 24 * time.Hour)
	sync("day 30")
	if secret().Serving.CertPEM == nil || string(secret().Serving.CertPEM) != string(first.Serving.CertPEM) {
		t.Error("renewed a certificate that was still valid for 60 days")
	}

	now = now.Add(55 * 24 * time.Hour) // day 85, 5 days before the serving certificate expires
	sync("day 85")
	renewed := secret()
	if string(renewed.Serving.CertPEM) == string(first.Serving.CertPEM) || string(renewed.CA.CertPEM) != string(first.CA.CertPEM) {
		t.Fatal("day 85: want a new serving certificate under the same CA (it lives 180 days)")
	}
	if published() != string(first.CA.CertPEM) {
		t.Error("a serving renewal under the same CA changed the caBundle")
	}
	if served() != string(first.Serving.CertPEM) {
		t.Error("the renewed certificate was served before publishDelay")
	}
	now = now.Add(publishDelay)
	sync("day 85, publishDelay later")
	if served() != string(renewed.Serving.CertPEM) {
		t.Error("the renewed certificate is not served after publishDelay")
	}

	now = now.Add(87 * 24 * time.Hour) // day 172: the CA expires on day 180, before a new serving certificate would
	sync("day 172")
	newCA := secret()
	if string(newCA.CA.CertPEM) == string(first.CA.CertPEM) {
		t.Fatal("day 172: the CA was not renewed though it would not outlive the serving certificate")
	}
	if !trusts(string(newCA.CA.CertPEM)) || !trusts(string(first.CA.CertPEM)) {
		t.Error("the caBundle must hold the new CA and the old one while the old one's certificates are served")
	}

	// A deleted Secret (or a renewal raced by another replica): a third CA, trusted beside the others.
	if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "rollout-guard", Name: "tls"}}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(publishDelay)
	sync("after the Secret was deleted")
	third := secret()
	if !trusts(string(third.CA.CertPEM)) || !trusts(string(newCA.CA.CertPEM)) || served() == string(third.Serving.CertPEM) {
		t.Error("a forced renewal must publish the new CA beside the old ones before serving its certificate")
	}
	now = now.Add(9 * 24 * time.Hour) // day 181: the first CA has expired
	sync("day 181")
	if trusts(string(first.CA.CertPEM)) {
		t.Error("an expired CA is still published")
	}
	if served() != string(third.Serving.CertPEM) {
		t.Error("the current certificate is not served")
	}
}
