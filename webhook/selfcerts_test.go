package webhook

import (
	"context"
	"os"
	"path/filepath"
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

// The rotation logic, with the clock moved: issue, keep while valid, renew
// before expiry, and publish every new CA. The e2e chart test covers the
// same code against the real API server for the first issue.
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
	serving := func() string {
		var sec corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: "rollout-guard", Name: "tls"}, &sec); err != nil {
			t.Fatal(err)
		}
		onDisk, err := os.ReadFile(filepath.Join(s.certDir, certs.CertFile))
		if err != nil || string(onDisk) != string(sec.Data[certs.CertFile]) {
			t.Fatalf("the serving certificate on disk is not the Secret's: %v", err)
		}
		if _, err := os.Stat(filepath.Join(s.certDir, certs.CAKeyFile)); err == nil {
			t.Fatal("the CA key was written to the certificate directory")
		}
		return string(sec.Data[certs.CertFile])
	}
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	first, firstCA := serving(), published()
	if first == "" || firstCA == "" {
		t.Fatal("nothing issued or published")
	}
	now = now.Add(30 * 24 * time.Hour)
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if serving() != first {
		t.Error("renewed a certificate that was still valid for 60 days")
	}
	now = now.Add(55 * 24 * time.Hour) // 5 days before expiry, inside renewBefore
	if err := s.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if serving() == first || published() == firstCA {
		t.Error("did not renew and republish 5 days before expiry")
	}
}
