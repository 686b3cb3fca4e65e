package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// File names inside a certificate directory. They match what
// controller-runtime's webhook server and a kubernetes.io/tls Secret expect.
const (
	CertFile   = "tls.crt"
	KeyFile    = "tls.key"
	CAFile     = "ca.crt"
	CAKeyFile  = "ca.key"
	pemCert    = "CERTIFICATE"
	pemECKey   = "EC PRIVATE KEY"
	pemRSAKey  = "RSA PRIVATE KEY"
	pemPubKey  = "PUBLIC KEY"
	serialBits = 128
)

// KeyPair is a certificate with its private key, both PEM encoded.
type KeyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// Certificate parses the first certificate of the pair.
func (k KeyPair) Certificate() (*x509.Certificate, error) {
	block, _ := pem.Decode(k.CertPEM)
	if block == nil || block.Type != pemCert {
		return nil, errors.New("no PEM certificate found")
	}
	return x509.ParseCertificate(block.Bytes)
}

func (k KeyPair) signer() (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(k.KeyPEM)
	if block == nil || block.Type != pemECKey {
		return nil, errors.New("no PEM EC private key found")
	}
	return x509.ParseECPrivateKey(block.Bytes)
}

// issuer parses a CA pair for signing.
func (k KeyPair) issuer() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cert, err := k.Certificate()
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	key, err := k.signer()
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA key: %w", err)
	}
	return cert, key, nil
}

// NewCA makes a self-signed CA valid for the given duration.
func NewCA(commonName string, validFor time.Duration, now time.Time) (KeyPair, error) {
	tmpl, err := template(commonName, validFor, now)
	if err != nil {
		return KeyPair{}, err
	}
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign
	return issue(tmpl, nil, nil)
}

// NewServing makes a serving certificate for the given host names and IP
// addresses, signed by ca.
func NewServing(ca KeyPair, hosts []string, validFor time.Duration, now time.Time) (KeyPair, error) {
	if len(hosts) == 0 {
		return KeyPair{}, errors.New("a serving certificate needs at least one host")
	}
	caCert, caKey, err := ca.issuer()
	if err != nil {
		return KeyPair{}, err
	}
	tmpl, err := template(hosts[0], validFor, now)
	if err != nil {
		return KeyPair{}, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return issue(tmpl, caCert, caKey)
}

// NewClient makes a client certificate for commonName in the given organizations, signed by ca. Kubernetes takes
// the common name as the user and the organizations as groups; the local test cluster's kubelet and kube-proxy
// authenticate with such certificates.
func NewClient(ca KeyPair, commonName string, organizations []string, validFor time.Duration, now time.Time) (KeyPair, error) {
	caCert, caKey, err := ca.issuer()
	if err != nil {
		return KeyPair{}, err
	}
	tmpl, err := template(commonName, validFor, now)
	if err != nil {
		return KeyPair{}, err
	}
	tmpl.Subject.Organization = organizations
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return issue(tmpl, caCert, caKey)
}

func template(commonName string, validFor time.Duration, now time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), serialBits))
	if err != nil {
		return nil, fmt.Errorf("make serial number: %w", err)
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName, Organization: []string{"rollout-guard"}},
		// Clocks of the API server and the webhook may disagree a little.
		NotBefore: now.Add(-5 * time.Minute),
		NotAfter:  now.Add(validFor),
	}, nil
}

// issue signs tmpl with parent (self-signed when parent is nil).
func issue(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate key: %w", err)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return KeyPair{}, fmt.Errorf("sign certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode key: %w", err)
	}
	return KeyPair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: pemCert, Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: pemECKey, Bytes: keyDER}),
	}, nil
}

// NeedsRenewal reports whether the pair is unusable or expires within before.
func NeedsRenewal(k KeyPair, before time.Duration, now time.Time) bool {
	cert, err := k.Certificate()
	if err != nil {
		return true
	}
	return now.Add(before).After(cert.NotAfter)
}

// Bundle is what a serving certificate directory holds.
type Bundle struct {
	CA      KeyPair
	Serving KeyPair
}

// NewBundle makes a CA and a serving certificate for hosts, valid for validFor, in one step. The CA lives twice as
// long, so that it can sign the next serving certificate too: a renewal then changes nothing clients trust.
func NewBundle(hosts []string, validFor time.Duration, now time.Time) (Bundle, error) {
	ca, err := NewCA("rollout-guard-ca", 2*validFor, now)
	if err != nil {
		return Bundle{}, fmt.Errorf("make CA: %w", err)
	}
	serving, err := NewServing(ca, hosts, validFor, now)
	if err != nil {
		return Bundle{}, fmt.Errorf("make serving certificate: %w", err)
	}
	return Bundle{CA: ca, Serving: serving}, nil
}

// WriteDir writes the bundle into dir. Each file is written to a temporary
// name and renamed, so a watcher never reads half a key.
func (b Bundle) WriteDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create certificate directory: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{CAFile, b.CA.CertPEM}, {CAKeyFile, b.CA.KeyPEM}, {KeyFile, b.Serving.KeyPEM}, {CertFile, b.Serving.CertPEM},
	}
	for _, f := range files {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
	}
	return nil
}

// ReadDir reads a bundle written by WriteDir.
func ReadDir(dir string) (Bundle, error) {
	var b Bundle
	targets := []struct {
		name string
		dst  *[]byte
	}{
		{CAFile, &b.CA.CertPEM}, {CAKeyFile, &b.CA.KeyPEM}, {CertFile, &b.Serving.CertPEM}, {KeyFile, &b.Serving.KeyPEM},
	}
	for _, t := range targets {
		data, err := os.ReadFile(filepath.Join(dir, t.name))
		if err != nil {
			return Bundle{}, fmt.Errorf("read %s: %w", t.name, err)
		}
		*t.dst = data
	}
	return b, nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return nil
}

// RSAKeyPair makes an RSA key pair as PEM (private PKCS#1, public PKIX), the
// form kube-apiserver and kube-controller-manager take for service account tokens.
func RSAKeyPair() (privatePEM, publicPEM []byte, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, fmt.Errorf("generate RSA key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("encode RSA public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemRSAKey, Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		pem.EncodeToMemory(&pem.Block{Type: pemPubKey, Bytes: pub}), nil
}

// Outlives reports whether the pair's certificate is readable and still valid at t.
func Outlives(k KeyPair, t time.Time) bool {
	cert, err := k.Certificate()
	return err == nil && cert.NotAfter.After(t)
}

// maxTrusted bounds a merged CA bundle: the current CA, the one before it while servers still present certificates
// it signed, and one more for a renewal that raced another.
const maxTrusted = 3

// MergeCABundle is the CA bundle to publish when ca is current and published is what clients trust now: ca plus
// every certificate of published not expired at now, newest expiry first, at most three. Clients keep trusting
// servers that still present a certificate signed by an earlier CA while they load the new one, so a CA renewal
// costs no request. The order depends only on the certificates, so replicas that merge the same set agree.
func MergeCABundle(ca, published []byte, now time.Time) []byte {
	var certsIn []*x509.Certificate
	seen := map[string]bool{}
	for _, data := range [][]byte{ca, published} {
		for rest := data; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			cert, err := x509.ParseCertificate(block.Bytes)
			if block.Type != pemCert || err != nil || !cert.NotAfter.After(now) || seen[string(cert.Raw)] {
				continue
			}
			seen[string(cert.Raw)] = true
			certsIn = append(certsIn, cert)
		}
	}
	sort.SliceStable(certsIn, func(i, j int) bool {
		if !certsIn[i].NotAfter.Equal(certsIn[j].NotAfter) {
			return certsIn[i].NotAfter.After(certsIn[j].NotAfter)
		}
		return string(certsIn[i].Raw) < string(certsIn[j].Raw)
	})
	var out []byte
	for i, c := range certsIn {
		if i == maxTrusted {
			break
		}
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: pemCert, Bytes: c.Raw})...)
	}
	return out
}
