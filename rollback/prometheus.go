package rollback

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/rollout-guard/rollout-guard/config"
)

// NewPrometheus is the Prometheus API the analyzer queries; nil when no address is configured.
func NewPrometheus(o config.Prometheus) (Querier, error) {
	if o.Address == "" {
		return nil, nil
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.InsecureSkipVerify} //nolint:gosec // the operator's explicit choice
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("analysis.prometheus.caFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("analysis.prometheus.caFile %s holds no PEM certificate", o.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConfig
	client, err := promapi.NewClient(promapi.Config{Address: o.Address, RoundTripper: credentials{next: transport, o: o}})
	if err != nil {
		return nil, fmt.Errorf("analysis.prometheus.address: %w", err)
	}
	return promv1.NewAPI(client), nil
}

// credentials adds the configured bearer token or basic auth to each request, read from their files each time so
// that a rotated Secret takes effect without a restart.
type credentials struct {
	next http.RoundTripper
	o    config.Prometheus
}

func (c credentials) RoundTrip(req *http.Request) (*http.Response, error) {
	read := func(path string) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read Prometheus credentials: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	switch {
	case c.o.BearerTokenFile != "":
		token, err := read(c.o.BearerTokenFile)
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+token)
	case c.o.UsernameFile != "":
		user, err := read(c.o.UsernameFile)
		if err != nil {
			return nil, err
		}
		pass, err := read(c.o.PasswordFile)
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.SetBasicAuth(user, pass)
	}
	return c.next.RoundTrip(req)
}
