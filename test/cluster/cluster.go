package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rollout-guard/rollout-guard/webhook/certs"
)

// NodeName is the one kwok node every cluster has.
const NodeName = "kwok-node-0"

// Options say where the binaries are and where the cluster keeps its files.
type Options struct {
	// BinDir holds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok.
	BinDir string
	// Dir receives data, certificates, logs and the kubeconfig. It must exist.
	Dir string
	// APIServerPort fixes the API server's port; 0 picks a free one.
	APIServerPort int
	// Detached clusters outlive the calling process (make dev-up).
	Detached bool
	// RealNode runs a real node (containerd, runc, CNI, kubelet, kube-proxy) and a local registry instead of
	// kwok. It needs root, and one machine runs one at a time (see StartReal).
	RealNode bool
	// Logf narrates progress; nil is silent.
	Logf func(format string, args ...any)
}

// Cluster is a running local control plane.
type Cluster struct {
	Dir        string     `json:"dir"`
	Kubeconfig string     `json:"kubeconfig"`
	Server     string     `json:"server"`
	Token      string     `json:"token"`
	CAFile     string     `json:"caFile"`
	BinDir     string     `json:"binDir"`
	Processes  []*Process `json:"processes"`
	// Guard is set once StartRolloutGuard has run.
	Guard *Guard `json:"guard,omitempty"`
	// Node is set when the cluster runs a real node (Options.RealNode).
	Node *RealNode `json:"node,omitempty"`
	// Prometheus is set once StartPrometheus has run.
	Prometheus *Prometheus `json:"prometheus,omitempty"`

	detached bool
}

// Start brings up etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and one Ready, schedulable node: kwok's simulated node, or
// with Options.RealNode a real one (StartReal). On error every process
// already started is stopped again.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	if o.RealNode {
		return startReal(ctx, o)
	}
	logf := logfOf(o)
	began := time.Now()
	c := &Cluster{Dir: o.Dir, Token: "rollout-guard-admin-token", BinDir: o.BinDir, detached: o.Detached}
	started := false
	defer func() {
		if !started {
			c.Stop()
		}
	}()
	if err := prepareDirs(o, "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"); err != nil {
		return nil, err
	}
	pki, err := writePKI(o.Dir, c.Token, nil)
	if err != nil {
		return nil, err
	}
	kcm, err := c.startControlPlane(ctx, o, controlPlane{pki: pki, bindAddress: "127.0.0.1", controllers: controllers,
		apiserverArgs: []string{"--authorization-mode", "RBAC"}})
	if err != nil {
		return nil, err
	}
	stages, err := Stages(KnownImages)
	if err != nil {
		return nil, err
	}
	stageFile := filepath.Join(o.Dir, "kwok-stages.yaml")
	if err := os.WriteFile(stageFile, stages, 0o644); err != nil {
		return nil, fmt.Errorf("write kwok stages: %w", err)
	}
	kwokPort, err := freePort()
	if err != nil {
		return nil, err
	}
	kwok, err := c.start("kwok", nil,
		"--kubeconfig", c.Kubeconfig, "--config", stageFile,
		"--manage-all-nodes=true", "--node-ip", "127.0.0.1", "--cidr", "10.244.0.0/16",
		"--server-address", "127.0.0.1:"+strconv.Itoa(kwokPort))
	if err != nil {
		return nil, err
	}
	client, err := c.Clientset()
	if err != nil {
		return nil, err
	}
	if err := kwok.waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
		return nodeReady(ctx, client)
	}); err != nil {
		return nil, err
	}
	if err := c.controlPlaneSettled(ctx, kcm, client); err != nil {
		return nil, err
	}
	started = true
	logf("cluster: ready in %s (node %s Ready, kubeconfig %s)", time.Since(began).Round(100*time.Millisecond), NodeName, c.Kubeconfig)
	return c, nil
}

func logfOf(o Options) func(string, ...any) {
	if o.Logf == nil {
		return func(string, ...any) {}
	}
	return o.Logf
}

// prepareDirs makes the cluster's directories and checks the binaries are built.
func prepareDirs(o Options, binaries ...string) error {
	for _, d := range []string{"logs", "pki", "etcd"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return fmt.Errorf("%s: binary not found in %s (build it with `make cluster-bins`): %w", b, o.BinDir, err)
		}
	}
	return nil
}

// start runs one of the cluster's binaries and records it for Stop.
func (c *Cluster) start(name string, env []string, args ...string) (*Process, error) {
	p, err := startProcess(name, filepath.Join(c.BinDir, name), args, env, filepath.Join(c.Dir, "logs"), c.detached)
	if err != nil {
		return nil, err
	}
	c.Processes = append(c.Processes, p)
	if c.Node != nil {
		// recorded at once, so that a later run can tell a node in use from one a killed run left
		return p, c.track(p)
	}
	return p, nil
}

// controlPlane is what differs between the kwok and the real-node control plane.
type controlPlane struct {
	pki pkiFiles
	// bindAddress is where the API server listens and what it advertises: loopback with kwok, the node's
	// address with a real node, whose pods reach it through the kubernetes Service.
	bindAddress   string
	apiserverArgs []string
	controllers   []string
}

// startControlPlane starts etcd, kube-apiserver (and waits for it), kube-controller-manager and kube-scheduler,
// and writes the admin kubeconfig. It returns the controller manager, which controlPlaneSettled waits for.
func (c *Cluster) startControlPlane(ctx context.Context, o Options, cp controlPlane) (*Process, error) {
	logf := logfOf(o)
	c.CAFile = cp.pki.caFile
	ports := map[string]int{}
	var err error
	for _, n := range []string{"etcd-client", "etcd-peer", "apiserver"} {
		if ports[n], err = freePort(); err != nil {
			return nil, err
		}
	}
	if o.APIServerPort != 0 {
		if err := checkPortFree("kube-apiserver", o.APIServerPort); err != nil {
			return nil, err
		}
		ports["apiserver"] = o.APIServerPort
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports["etcd-client"])
	etcd, err := c.start("etcd", nil,
		"--data-dir", filepath.Join(o.Dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(ports["etcd-peer"]),
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+strconv.Itoa(ports["etcd-peer"]),
		"--initial-cluster", "default=http://127.0.0.1:"+strconv.Itoa(ports["etcd-peer"]),
		"--listen-metrics-urls", "", "--unsafe-no-fsync", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	if err := etcd.waitFor(ctx, 30*time.Second, httpOK(http.DefaultClient, etcdURL+"/health", "")); err != nil {
		return nil, err
	}
	logf("cluster: etcd ready on %s", etcdURL)

	c.Server = "https://" + net.JoinHostPort(cp.bindAddress, strconv.Itoa(ports["apiserver"]))
	apiserver, err := c.start("kube-apiserver", nil, append([]string{
		"--etcd-servers", etcdURL,
		"--bind-address", cp.bindAddress, "--advertise-address", cp.bindAddress,
		"--secure-port", strconv.Itoa(ports["apiserver"]),
		"--cert-dir", filepath.Join(o.Dir, "pki"),
		"--tls-cert-file", cp.pki.servingCert, "--tls-private-key-file", cp.pki.servingKey,
		"--client-ca-file", cp.pki.caFile,
		"--token-auth-file", cp.pki.tokenFile,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", cp.pki.saPublic,
		"--service-account-signing-key-file", cp.pki.saPrivate,
		"--service-cluster-ip-range", serviceCIDR,
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1"}, cp.apiserverArgs...)...)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(cp.pki.caFile)
	if err != nil {
		return nil, fmt.Errorf("read cluster CA: %w", err)
	}
	apiClient, err := tlsClient(caPEM)
	if err != nil {
		return nil, err
	}
	if err := apiserver.waitFor(ctx, 90*time.Second, httpOK(apiClient, c.Server+"/readyz", c.Token)); err != nil {
		return nil, err
	}
	logf("cluster: kube-apiserver ready on %s", c.Server)

	c.Kubeconfig = filepath.Join(o.Dir, "kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.Server, c.CAFile, "token: "+c.Token); err != nil {
		return nil, err
	}
	kubeconfigFlags := []string{"--kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig}
	kcm, err := c.start("kube-controller-manager", nil, append(kubeconfigFlags,
		"--controllers", strings.Join(cp.controllers, ","),
		"--leader-elect=false", "--secure-port", "0",
		"--service-account-private-key-file", cp.pki.saPrivate,
		"--root-ca-file", cp.pki.caFile,
		"--use-service-account-credentials=false",
		"--concurrent-deployment-syncs", "10", "--concurrent-replicaset-syncs", "10",
		// The defaults (20 QPS) make creating thousands of pods take minutes.
		"--kube-api-qps", "200", "--kube-api-burst", "400",
		"--v=1")...)
	if err != nil {
		return nil, err
	}
	if _, err := c.start("kube-scheduler", nil, append(kubeconfigFlags,
		"--leader-elect=false", "--secure-port", "0", "--kube-api-qps", "200", "--kube-api-burst", "400", "--v=1")...); err != nil {
		return nil, err
	}
	return kcm, nil
}

// controlPlaneSettled checks the controllers still run and waits for the default ServiceAccount, which pods need
// and the controller manager makes.
func (c *Cluster) controlPlaneSettled(ctx context.Context, kcm *Process, client kubernetes.Interface) error {
	for _, p := range c.Processes {
		if p.Name != "kube-controller-manager" && p.Name != "kube-scheduler" {
			continue
		}
		if gone, perr := p.exited(); gone {
			return p.failure(fmt.Sprintf("exited (%v)", perr))
		}
	}
	return kcm.waitFor(ctx, 60*time.Second, func(ctx context.Context) error {
		_, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	})
}

// serviceCIDR holds the clusters' Service addresses; 10.0.0.1 is the kubernetes Service.
const serviceCIDR = "10.0.0.0/24"

// controllers are the kube-controller-manager loops rollout-guard's behaviour
// depends on; the rest of a real cluster is left out to save CPU.
var controllers = []string{
	"deployment-controller", "replicaset-controller", "statefulset-controller", "daemonset-controller",
	"garbage-collector-controller", "namespace-controller", "serviceaccount-controller",
	"resourcequota-controller", "clusterrole-aggregation-controller",
}

// nodeReady creates the kwok node if needed and waits for kwok to report it
// Ready. It then lifts the not-ready taint admission put on it, because the
// node lifecycle controller that would do so is not running.
func nodeReady(ctx context.Context, client kubernetes.Interface) error {
	node, err := client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err = client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        NodeName,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": NodeName, "kubernetes.io/os": "linux"},
		}}, metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("get node %s: %w", NodeName, err)
	}
	ready := false
	for _, cond := range node.Status.Conditions {
		ready = ready || (cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue)
	}
	if !ready {
		return fmt.Errorf("node %s is not Ready yet", NodeName)
	}
	var kept []corev1.Taint
	for _, t := range node.Spec.Taints {
		if t.Key != corev1.TaintNodeNotReady {
			kept = append(kept, t)
		}
	}
	if len(kept) == len(node.Spec.Taints) {
		return nil
	}
	node.Spec.Taints = kept
	if _, err := client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("remove not-ready taint from %s: %w", NodeName, err)
	}
	return errors.New("not-ready taint removed; checking again")
}

// StopOnSignal stops the cluster and exits with 130 when the run is interrupted (Ctrl-C, a CI timeout's SIGTERM), so
// that an interrupted test run leaves no control plane or real node behind.
func (c *Cluster) StopOnSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		c.Stop()
		os.Exit(130)
	}()
}

// Stop ends every component, newest first. A real node is torn down in the order its cleanup needs, and the
// host is put back as it was.
func (c *Cluster) Stop() {
	if c.Node != nil {
		if err := c.stopReal(); err != nil {
			fmt.Fprintf(os.Stderr, "cluster: real node teardown: %v\n", err)
		}
		return
	}
	for i := len(c.Processes) - 1; i >= 0; i-- {
		c.Processes[i].Stop(5 * time.Second)
	}
}

// RESTConfig is an admin client configuration for the cluster.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", c.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 200, 400
	return cfg, nil
}

// Clientset is an admin clientset for the cluster.
func (c *Cluster) Clientset() (*kubernetes.Clientset, error) {
	cfg, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// writeKubeconfig writes a kubeconfig for server whose user is the given YAML (a token, or client certificate
// files).
func writeKubeconfig(path, server, caFile, user string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: user
  user: {%s}
contexts:
- name: local
  context: {cluster: local, user: user, namespace: default}
current-context: local
`, server, caFile, user)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

type pkiFiles struct {
	caFile, servingCert, servingKey, saPrivate, saPublic, tokenFile string
	ca                                                              certs.KeyPair
}

// writePKI makes the cluster CA, the API server's serving certificate, the
// service account signing keys and the static admin token.
func writePKI(dir, token string, extraHosts []string) (pkiFiles, error) {
	p := filepath.Join(dir, "pki")
	f := pkiFiles{
		caFile: filepath.Join(p, certs.CAFile), servingCert: filepath.Join(p, certs.CertFile), servingKey: filepath.Join(p, certs.KeyFile),
		saPrivate: filepath.Join(p, "sa.key"), saPublic: filepath.Join(p, "sa.pub"), tokenFile: filepath.Join(p, "tokens.csv"),
	}
	hosts := append([]string{"127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local", "10.0.0.1"}, extraHosts...)
	bundle, err := certs.NewBundle(hosts, 365*24*time.Hour, time.Now())
	if err != nil {
		return f, fmt.Errorf("cluster PKI: %w", err)
	}
	if err := bundle.WriteDir(p); err != nil {
		return f, fmt.Errorf("cluster PKI: %w", err)
	}
	f.ca = bundle.CA
	priv, pub, err := certs.RSAKeyPair()
	if err != nil {
		return f, fmt.Errorf("service account keys: %w", err)
	}
	for path, data := range map[string][]byte{
		f.saPrivate: priv, f.saPublic: pub,
		f.tokenFile: []byte(token + ",admin,admin-uid,system:masters\n"),
	} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return f, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return f, nil
}

func tlsClient(caPEM []byte) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("cluster CA holds no certificate")
	}
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}, nil
}

// httpOK is a readiness check: GET url answers 200.
func httpOK(client *http.Client, url, token string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}
