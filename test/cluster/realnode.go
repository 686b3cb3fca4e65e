package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-guard/rollout-guard/webhook/certs"
)

// A real node uses what a machine has once: the kubelet's port 10250, the /kubepods cgroups, a bridge, iptables
// chains. So there is one per machine, with its state in one fixed place. The path is short because containerd's
// shim sockets live below it and a unix socket path holds at most 108 bytes.
const (
	RealNodeRoot = "/var/tmp/rg-node"
	RealNodeName = "real-node-0"
	podCIDR      = "10.244.0.0/24"
	// bridgeName is not the usual cni0, so that a host's own CNI bridge is never touched.
	bridgeName  = "rg-cni0"
	kubeletPort = 10250
)

// RealNode is the real node of a cluster: where it keeps its state, its address, and the local registry its
// images come from.
type RealNode struct {
	Name string `json:"name"`
	IP   string `json:"ip"`
	Root string `json:"root"`
	// Registry is the local plain-HTTP registry, host:port. Images named as on Docker Hub (nginx:1.7.9) are pulled
	// from it too, as REGISTRY/library/nginx:1.7.9.
	Registry string     `json:"registry"`
	Before   hostBefore `json:"before"`
	// PIDs of the node's processes, and Owner, the process that started them (0: detached, as with
	// `make dev-up`), so that a later run can tell a node in use from one a killed run left.
	PIDs  map[string]int `json:"pids"`
	Owner int            `json:"owner"`
}

// inUse names a process of a node that is still in use, or returns "".
func (n *RealNode) inUse() string {
	if n.Owner > 0 {
		if alive(n.Owner) {
			return fmt.Sprintf("started by pid %d, which still runs", n.Owner)
		}
		return ""
	}
	for name, pid := range n.PIDs {
		if alive(pid) && strings.Contains(processCommand(pid), name) {
			return fmt.Sprintf("%s runs as pid %d", name, pid)
		}
	}
	return ""
}

const nodeStateFile = "node.json"

func (n *RealNode) save() error {
	data, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(n.Root, nodeStateFile), data, 0o600)
}

// nodeBinaries are the binaries a real-node cluster runs, relative to the bin directory.
var nodeBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet",
	"kube-proxy", "cri-cleanup", "containerd", "containerd-shim-runc-v2", "registry", "imagebuild", "cni/bridge",
	"cni/host-local", "cni/loopback", "cni/portmap"}

// hostTools are what the node execs from the host; `make node-deps` installs them.
var hostTools = []string{"runc", "iptables", "iptables-save", "iptables-restore", "ip6tables", "ip", "nft", "conntrack"}

// realControllers adds to the kwok list what a real node needs: the node lifecycle controller lifts the
// not-ready taint, EndpointSlices give kube-proxy its backends, every pod mounts the kube-root-ca.crt ConfigMap,
// and pods of deleted nodes are collected.
var realControllers = append(append([]string(nil), controllers...), "node-lifecycle-controller",
	"endpointslice-controller", "root-ca-certificate-publisher-controller", "pod-garbage-collector-controller",
	"taint-eviction-controller", "disruption-controller")

// CheckRealNodeHost says what this machine lacks for a real node, or nil.
func CheckRealNodeHost(binDir string) error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("the real node needs root (containerd, runc, the CNI bridge and iptables change the host); run as root"))
	}
	for _, t := range hostTools {
		if _, err := exec.LookPath(t); err != nil {
			errs = append(errs, fmt.Errorf("%s is not installed (`make node-deps` installs runc, iptables, nftables, conntrack and iproute2 from Debian packages)", t))
		}
	}
	for _, b := range nodeBinaries {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			errs = append(errs, fmt.Errorf("%s is not built in %s (run `make cluster-bins`)", b, binDir))
		}
	}
	return errors.Join(errs...)
}

// startReal starts the control plane with one real node: a plain-HTTP registry on loopback with the test images,
// etcd, kube-apiserver on the node's address, the controllers, containerd with runc and the CNI bridge, the
// kubelet and kube-proxy. A node a killed run left behind is cleaned up first; one still in use is an error.
func startReal(ctx context.Context, o Options) (*Cluster, error) {
	logf := logfOf(o)
	began := time.Now()
	if err := CheckRealNodeHost(o.BinDir); err != nil {
		return nil, fmt.Errorf("cannot start a real node on this machine:\n%w", err)
	}
	if err := CleanupStaleNode(o.BinDir, logf); err != nil {
		return nil, err
	}
	if err := prepareDirs(o); err != nil {
		return nil, err
	}
	ip, err := defaultRouteIP()
	if err != nil {
		return nil, err
	}
	n := &RealNode{Name: RealNodeName, IP: ip, Root: RealNodeRoot, Before: recordHost(), PIDs: map[string]int{}}
	if !o.Detached {
		n.Owner = os.Getpid()
	}
	c := &Cluster{Dir: o.Dir, Token: "rollout-guard-admin-token", BinDir: o.BinDir, detached: o.Detached, Node: n}
	started := false
	defer func() {
		if !started {
			c.Stop()
		}
	}()
	for _, d := range []string{"cni/net.d", "containerd/certs.d", "registry", "kubelet", "pod-logs", "images"} {
		if err := os.MkdirAll(filepath.Join(n.Root, d), 0o755); err != nil {
			return nil, err
		}
	}
	// Saved before anything starts, so that an interrupted start is cleaned up by the next one.
	if err := n.save(); err != nil {
		return nil, fmt.Errorf("record the node's state: %w", err)
	}

	pki, err := writePKI(o.Dir, c.Token, []string{ip})
	if err != nil {
		return nil, err
	}
	clientCerts, err := writeNodeClientCerts(o.Dir, pki.ca, n.Name)
	if err != nil {
		return nil, err
	}

	if err := c.startRegistry(ctx); err != nil {
		return nil, err
	}
	if err := pushTestImages(ctx, o.BinDir, n); err != nil {
		return nil, err
	}
	logf("cluster: registry on %s with the test images", n.Registry)

	kcm, err := c.startControlPlane(ctx, o, controlPlane{pki: pki, bindAddress: ip, controllers: realControllers,
		apiserverArgs: []string{
			"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
			"--kubelet-client-certificate", clientCerts["apiserver-kubelet-client"] + ".crt",
			"--kubelet-client-key", clientCerts["apiserver-kubelet-client"] + ".key",
			// the node's host name is in no DNS
			"--kubelet-preferred-address-types", "InternalIP",
		}})
	if err != nil {
		return nil, err
	}
	if err := c.startRuntime(ctx); err != nil {
		return nil, err
	}
	logf("cluster: containerd up")
	if err := c.startKubelet(ctx, pki, clientCerts); err != nil {
		return nil, err
	}
	client, err := c.Clientset()
	if err != nil {
		return nil, err
	}
	if err := c.controlPlaneSettled(ctx, kcm, client); err != nil {
		return nil, err
	}
	started = true
	logf("cluster: ready in %s (node %s Ready, kubeconfig %s)", time.Since(began).Round(100*time.Millisecond), n.Name, c.Kubeconfig)
	return c, nil
}

// track records a node process for CleanupStaleNode.
func (c *Cluster) track(p *Process) error {
	c.Node.PIDs[p.Name] = p.PID
	return c.Node.save()
}

func (c *Cluster) startRegistry(ctx context.Context) error {
	n := c.Node
	port, err := freePort()
	if err != nil {
		return err
	}
	n.Registry = "127.0.0.1:" + strconv.Itoa(port)
	cfg := filepath.Join(n.Root, "registry.yml")
	if err := renderFile(cfg, registryConfig, n); err != nil {
		return err
	}
	p, err := c.start("registry", []string{"OTEL_TRACES_EXPORTER=none"}, "serve", cfg)
	if err != nil {
		return err
	}
	return p.waitFor(ctx, 20*time.Second, httpOK(http.DefaultClient, "http://"+n.Registry+"/v2/", ""))
}

// startRuntime starts containerd with runc and the CNI bridge. The bridge is made first, with a route for the
// Service range through it: a Service address that kube-proxy has not programmed yet then goes nowhere instead
// of out of the default route.
func (c *Cluster) startRuntime(ctx context.Context) error {
	n := c.Node
	for _, args := range [][]string{
		{"link", "add", bridgeName, "type", "bridge"},
		{"link", "set", bridgeName, "up"},
		{"route", "add", serviceCIDR, "dev", bridgeName},
	} {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	runc, err := exec.LookPath("runc")
	if err != nil {
		return err
	}
	data := map[string]string{"Root": n.Root, "BinDir": c.BinDir, "Registry": n.Registry, "Runc": runc,
		"Bridge": bridgeName, "PodCIDR": podCIDR}
	files := map[string]string{
		"cni/net.d/10-bridge.conflist":                     cniConfig,
		"containerd/config.toml":                           containerdConfig,
		"containerd/certs.d/" + n.Registry + "/hosts.toml": hostsTOML,
		// Docker Hub names (nginx:1.7.9 is docker.io/library/nginx:1.7.9) resolve in the local registry, so the
		// seeds' manifests run unchanged; a tag never pushed fails to pull, as a typo does.
		"containerd/certs.d/docker.io/hosts.toml": hostsTOML,
	}
	for path, tmpl := range files {
		if err := renderFile(filepath.Join(n.Root, path), tmpl, data); err != nil {
			return err
		}
	}
	// containerd finds containerd-shim-runc-v2 on its PATH
	p, err := c.start("containerd", []string{"PATH=" + c.BinDir + ":" + os.Getenv("PATH")},
		"--config", filepath.Join(n.Root, "containerd", "config.toml"))
	if err != nil {
		return err
	}
	return p.waitFor(ctx, 30*time.Second, func(context.Context) error {
		_, err := os.Stat(filepath.Join(n.Root, "containerd", "containerd.sock"))
		return err
	})
}

func (c *Cluster) startKubelet(ctx context.Context, pki pkiFiles, clientCerts map[string]string) error {
	n := c.Node
	ports := map[string]int{}
	for _, name := range []string{"KubeletHealthz", "ProxyHealthz", "ProxyMetrics"} {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[name] = p
	}
	data := map[string]any{"Root": n.Root, "IP": n.IP, "Name": n.Name, "CA": pki.caFile, "PodCIDR": podCIDR,
		"KubeletPort": kubeletPort, "Ports": ports}
	for file, tmpl := range map[string]string{"kubelet.yaml": kubeletConfig, "kube-proxy.yaml": kubeProxyConfig} {
		if err := renderFile(filepath.Join(n.Root, file), tmpl, data); err != nil {
			return err
		}
	}
	for _, who := range []string{"kubelet", "kube-proxy"} {
		user := fmt.Sprintf("client-certificate: %s.crt, client-key: %s.key", clientCerts[who], clientCerts[who])
		if err := writeKubeconfig(filepath.Join(n.Root, who+".kubeconfig"), c.Server, c.CAFile, user); err != nil {
			return err
		}
	}
	if err := checkPortFree("kubelet", kubeletPort); err != nil {
		return err
	}
	kubelet, err := c.start("kubelet", nil, "--config", filepath.Join(n.Root, "kubelet.yaml"),
		"--kubeconfig", filepath.Join(n.Root, "kubelet.kubeconfig"), "--root-dir", filepath.Join(n.Root, "kubelet"),
		"--cert-dir", filepath.Join(n.Root, "kubelet", "pki"), "--hostname-override", n.Name, "--node-ip", n.IP, "--v=1")
	if err != nil {
		return err
	}
	proxy, err := c.start("kube-proxy", nil, "--config", filepath.Join(n.Root, "kube-proxy.yaml"), "--v=1")
	if err != nil {
		return err
	}
	client, err := c.Clientset()
	if err != nil {
		return err
	}
	if err := kubelet.waitFor(ctx, 120*time.Second, func(ctx context.Context) error {
		node, err := client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				for _, t := range node.Spec.Taints {
					if t.Key == corev1.TaintNodeNotReady {
						return errors.New("node Ready, not-ready taint not lifted yet")
					}
				}
				return nil
			}
		}
		return fmt.Errorf("node %s is not Ready yet", n.Name)
	}); err != nil {
		return err
	}
	return proxy.waitFor(ctx, 60*time.Second, httpOK(http.DefaultClient,
		"http://127.0.0.1:"+strconv.Itoa(ports["ProxyHealthz"])+"/healthz", ""))
}

// writeNodeClientCerts writes the client certificates of the kubelet (system:node:NAME in system:nodes),
// kube-proxy (system:kube-proxy, bound to system:node-proxier by the default RBAC) and the API server's client
// towards the kubelet (system:masters). It returns each one's path without the .crt/.key suffix.
func writeNodeClientCerts(dir string, ca certs.KeyPair, node string) (map[string]string, error) {
	out := map[string]string{}
	for name, subject := range map[string]struct {
		cn   string
		orgs []string
	}{
		"kubelet":                  {"system:node:" + node, []string{"system:nodes"}},
		"kube-proxy":               {"system:kube-proxy", nil},
		"apiserver-kubelet-client": {"kube-apiserver-kubelet-client", []string{"system:masters"}},
	} {
		pair, err := certs.NewClient(ca, subject.cn, subject.orgs, 365*24*time.Hour, time.Now())
		if err != nil {
			return nil, fmt.Errorf("%s certificate: %w", name, err)
		}
		base := filepath.Join(dir, "pki", name)
		if err := os.WriteFile(base+".crt", pair.CertPEM, 0o600); err != nil {
			return nil, err
		}
		if err := os.WriteFile(base+".key", pair.KeyPEM, 0o600); err != nil {
			return nil, err
		}
		out[name] = base
	}
	return out, nil
}

// stopReal stops everything that is not the node (rollout-guard processes, extra watchers), then the node in the
// order its cleanup needs.
func (c *Cluster) stopReal() error {
	byName := map[string]*Process{}
	for i := len(c.Processes) - 1; i >= 0; i-- {
		p := c.Processes[i]
		if _, ok := c.Node.PIDs[p.Name]; ok || isControlPlane(p.Name) {
			byName[p.Name] = p
			continue
		}
		p.Stop(5 * time.Second)
	}
	return teardownNode(c.Node, c.BinDir, func(name string) {
		if p := byName[name]; p != nil {
			p.Stop(10 * time.Second)
		}
	})
}

func isControlPlane(name string) bool {
	switch name {
	case "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler":
		return true
	}
	return false
}

// CleanupStaleNode tears down a real node that a killed or interrupted run left behind (its processes gone, its
// containers, mounts, bridge, iptables chains and cgroups still there). It fails when the node is still in use,
// for example by `make dev-up NODE=real`.
func CleanupStaleNode(binDir string, logf func(string, ...any)) error {
	data, err := os.ReadFile(filepath.Join(RealNodeRoot, nodeStateFile))
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(RealNodeRoot); serr == nil {
			// started so little that it recorded nothing: only files to remove
			return os.RemoveAll(RealNodeRoot)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read the state of the real node in %s: %w", RealNodeRoot, err)
	}
	var n RealNode
	if err := json.Unmarshal(data, &n); err != nil {
		return fmt.Errorf("decode %s: %w (remove %s by hand once nothing runs from it)", nodeStateFile, err, RealNodeRoot)
	}
	if who := n.inUse(); who != "" {
		return fmt.Errorf("a real node is running on this machine (%s; state in %s): one machine runs one, stop it first (`make dev-down`)", who, RealNodeRoot)
	}
	logf("cluster: cleaning up a real node a previous run left behind")
	return teardownNode(&n, binDir, func(name string) {
		if pid := n.PIDs[name]; pid > 0 && alive(pid) && strings.Contains(processCommand(pid), name) {
			stopPID(pid, 10*time.Second)
		}
	})
}

func processCommand(pid int) string {
	data, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return string(data)
}

func stopPID(pid int, grace time.Duration) {
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(grace); time.Now().Before(deadline); {
		if !alive(pid) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// teardownNode puts the host back. Pods go first, while containerd still runs: stopping a sandbox is what runs
// CNI DEL (veth, IPAM lease, the plugins' iptables rules) and unmounts it. When containerd is gone (a killed run),
// it is started once more for that. Every step runs even when an earlier one failed; the errors are joined.
func teardownNode(n *RealNode, binDir string, stop func(name string)) error {
	var errs []error
	note := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range []string{"kube-controller-manager", "kube-scheduler", "kubelet"} {
		stop(name)
	}
	note(removeSandboxes(n, binDir, stop))
	stop("kube-proxy")
	if out, err := exec.Command(filepath.Join(binDir, "kube-proxy"), "--cleanup").CombinedOutput(); err != nil {
		note(fmt.Errorf("kube-proxy --cleanup: %w: %s", err, lastLines(string(out), 5)))
	}
	stop("containerd")
	// shims outlive containerd; ours are those started with our socket
	for _, line := range nodeProcesses(binDir) {
		pid, _ := strconv.Atoi(strings.Fields(line)[0])
		if strings.Contains(line, "containerd-shim-runc-v2") && strings.Contains(line, n.Root) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, name := range []string{"kube-apiserver", "etcd", "registry"} {
		stop(name)
	}
	note(removeKubepodsCgroups())
	note(unmountUnder(n.Root))
	note(removeBridge())
	note(removeIptablesChains())
	note(dropEmptyNftTables(n.Before))
	note(restoreSysctls(n.Before))
	note(removeHostPaths(n.Before, n.Root))
	if len(mountsUnder(n.Root)) == 0 {
		note(os.RemoveAll(n.Root))
	}
	return errors.Join(errs...)
}

// removeSandboxes stops and removes every pod sandbox through CRI (cri-cleanup).
func removeSandboxes(n *RealNode, binDir string, stop func(string)) error {
	socket := filepath.Join(n.Root, "containerd", "containerd.sock")
	config := filepath.Join(n.Root, "containerd", "config.toml")
	if _, err := os.Stat(config); err != nil {
		return nil // containerd never started
	}
	if !containerdAnswers(binDir, socket) {
		// a killed run: start containerd again, on the same state, to stop what it left
		_ = os.Remove(socket)
		cmd := exec.Command(filepath.Join(binDir, "containerd"), "--config", config)
		cmd.Env = append(os.Environ(), "PATH="+binDir+":"+os.Getenv("PATH"))
		log, _ := os.Create(filepath.Join(n.Root, "containerd-cleanup.log"))
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start containerd to remove the pods a killed run left: %w", err)
		}
		defer func() {
			stopPID(cmd.Process.Pid, 10*time.Second)
			_ = cmd.Wait()
			_ = log.Close()
		}()
		for i := 0; i < 150 && !containerdAnswers(binDir, socket); i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}
	out, err := exec.Command(filepath.Join(binDir, "cri-cleanup"), "unix://"+socket).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cri-cleanup: %w: %s", err, lastLines(string(out), 10))
	}
	return nil
}

func containerdAnswers(binDir, socket string) bool {
	if _, err := os.Stat(socket); err != nil {
		return false
	}
	return exec.Command(filepath.Join(binDir, "ctr"), "--address", socket, "version").Run() == nil
}

// removeBridge deletes the veths left on the node's bridge, then the bridge (and the route through it).
func removeBridge() error {
	if _, err := os.Stat("/sys/class/net/" + bridgeName); err != nil {
		return nil
	}
	ports, _ := os.ReadDir("/sys/class/net/" + bridgeName + "/brif")
	for _, p := range ports {
		_ = exec.Command("ip", "link", "del", p.Name()).Run()
	}
	if out, err := exec.Command("ip", "link", "del", bridgeName).CombinedOutput(); err != nil {
		return fmt.Errorf("ip link del %s: %w: %s", bridgeName, err, out)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func renderFile(path, tmpl string, data any) error {
	t, err := template.New(filepath.Base(path)).Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return fmt.Errorf("template for %s: %w", path, err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return fmt.Errorf("render %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func sleepBriefly() { time.Sleep(100 * time.Millisecond) }

const registryConfig = `# distribution registry: plain HTTP on loopback, images on disk under the node's root
version: 0.1
log:
  level: warn
  accesslog: {disabled: true}
storage:
  filesystem: {rootdirectory: {{.Root}}/registry}
  delete: {enabled: true}
http:
  addr: {{.Registry}}
`

const cniConfig = `{
  "cniVersion": "1.0.0",
  "name": "rollout-guard-node",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "{{.Bridge}}",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "{{.Root}}/cni/ipam",
        "ranges": [[{"subnet": "{{.PodCIDR}}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

// containerdConfig keeps every path of containerd 2 (config version 4) under the node's root.
const containerdConfig = `version = 4
root = "{{.Root}}/containerd/root"
state = "{{.Root}}/containerd/state"
imports = []
# NRI would open /var/run/nri/nri.sock and read /etc/nri
disabled_plugins = ["io.containerd.nri.v1.nri"]

[plugins]
  [plugins.'io.containerd.server.v1.grpc']
    address = "{{.Root}}/containerd/containerd.sock"
  [plugins.'io.containerd.server.v1.ttrpc']
    address = "{{.Root}}/containerd/containerd.sock.ttrpc"
  [plugins.'io.containerd.shim.v1.manager']
    socket_dir = "{{.Root}}/containerd/s"
  [plugins.'io.containerd.internal.v1.opt']
    path = "{{.Root}}/containerd/opt"
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "{{.Registry}}/pause:3.10"
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = "{{.Root}}/containerd/certs.d"
  [plugins.'io.containerd.cri.v1.runtime']
    netns_mounts_under_state_dir = true
    # The sandbox asks for oom_score_adj -998, which needs CAP_SYS_RESOURCE; without it runc dies with "can't get
    # final child's PID from pipe: EOF". Never ask for less than containerd's own.
    restrict_oom_score_adj = true
    cdi_spec_dirs = []
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "{{.Runc}}"
          Root = "{{.Root}}/containerd/runc"
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["{{.BinDir}}/cni"]
      conf_dir = "{{.Root}}/cni/net.d"
      max_conf_num = 1
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
`

const hostsTOML = `server = "http://{{.Registry}}"

[host."http://{{.Registry}}"]
  capabilities = ["pull", "resolve", "push"]
`

const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# 1.35+ refuses cgroup v1 hosts unless told otherwise
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://{{.Root}}/containerd/containerd.sock
imageServiceEndpoint: unix://{{.Root}}/containerd/containerd.sock
address: {{.IP}}
port: {{.KubeletPort}}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: {{.Ports.KubeletHealthz}}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: {{.CA}}}
authorization: {mode: Webhook}
podLogsDir: {{.Root}}/pod-logs
volumePluginDir: {{.Root}}/kubelet/volume-plugins
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
# test machines have full disks and little memory: never evict test pods for that
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
nodeStatusUpdateFrequency: 5s
syncFrequency: 10s
# the default -999 needs CAP_SYS_RESOURCE
oomScoreAdj: 0
`

const kubeProxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: {{.Name}}
clientConnection: {kubeconfig: {{.Root}}/kube-proxy.kubeconfig}
clusterCIDR: {{.PodCIDR}}
healthzBindAddress: 127.0.0.1:{{.Ports.ProxyHealthz}}
metricsBindAddress: 127.0.0.1:{{.Ports.ProxyMetrics}}
nodePortAddresses: ["primary"]
# true would set net.ipv4.conf.all.route_localnet=1
iptables: {localhostNodePorts: false}
oomScoreAdj: 0
# 0 leaves the host's conntrack sysctls as they are
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`
