package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Prometheus is a real Prometheus server (test/tools/prometheus) run on the host. It discovers the cluster's pods
// through the API server (kubernetes_sd_configs, role pod) and scrapes those annotated prometheus.io/scrape: "true"
// at prometheus.io/port, every 2 s, labelling each series with its namespace and pod as common setups do.
type Prometheus struct {
	// URL is where pods and the host reach its HTTP API: the node's address on a real node, loopback with kwok.
	URL  string `json:"url"`
	addr string
	dir  string
	proc *Process
}

// prometheusConfig scrapes annotated pods; the relabelling is the one most Helm charts and tutorials ship.
const prometheusConfig = `global:
  scrape_interval: 2s
  scrape_timeout: 1s
  evaluation_interval: 2s
scrape_configs:
- job_name: pods
  kubernetes_sd_configs:
  - role: pod
    api_server: %[1]q
    tls_config: {ca_file: %[2]q}
    authorization: {credentials: %[3]q}
  relabel_configs:
  - {source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape], regex: "true", action: keep}
  - source_labels: [__address__, __meta_kubernetes_pod_annotation_prometheus_io_port]
    regex: '([^:]+)(?::\d+)?;(\d+)'
    replacement: '$1:$2'
    target_label: __address__
  - {source_labels: [__meta_kubernetes_namespace], target_label: namespace}
  - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
`

// StartPrometheus runs Prometheus for the cluster and waits until it is ready. It is stopped with the cluster.
func (c *Cluster) StartPrometheus(ctx context.Context) (*Prometheus, error) {
	host := "127.0.0.1"
	if c.Node != nil {
		host = c.Node.IP // the watcher pod queries it
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &Prometheus{addr: net.JoinHostPort(host, strconv.Itoa(port)), dir: filepath.Join(c.Dir, "prometheus")}
	p.URL = "http://" + p.addr
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(prometheusConfig, c.Server, c.CAFile, c.Token)
	if err := os.WriteFile(filepath.Join(p.dir, "prometheus.yml"), []byte(config), 0o600); err != nil {
		return nil, fmt.Errorf("write Prometheus config: %w", err)
	}
	if err := c.runPrometheus(ctx, p); err != nil {
		return nil, err
	}
	c.Prometheus = p
	return p, nil
}

// runPrometheus starts p's server, on its address and data, and waits for /-/ready.
func (c *Cluster) runPrometheus(ctx context.Context, p *Prometheus) error {
	proc, err := startProcess("prometheus", filepath.Join(c.BinDir, "prometheus"), []string{
		"--config.file", filepath.Join(p.dir, "prometheus.yml"), "--storage.tsdb.path", filepath.Join(p.dir, "data"),
		"--storage.tsdb.retention.time", "2h", "--web.listen-address", p.addr,
	}, nil, filepath.Join(c.Dir, "logs"), c.detached)
	if err != nil {
		return err
	}
	c.Processes = append(c.Processes, proc)
	p.proc = proc
	return proc.waitFor(ctx, 60*time.Second, httpOK(&http.Client{Timeout: 2 * time.Second}, p.URL+"/-/ready", ""))
}

// Stop ends the server, as an outage would; RestartPrometheus brings it back on the same address with the same data.
func (p *Prometheus) Stop() {
	if p.proc != nil {
		p.proc.Stop(5 * time.Second)
	}
}

// RestartPrometheus starts the cluster's stopped Prometheus again.
func (c *Cluster) RestartPrometheus(ctx context.Context) error {
	if c.Prometheus == nil {
		return fmt.Errorf("no Prometheus was started")
	}
	return c.runPrometheus(ctx, c.Prometheus)
}
