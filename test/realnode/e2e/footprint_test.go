package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// The figures the issue asks for, measured where they matter and logged for the note; what is asserted is that every
// request in the measurement was answered correctly, so that a figure never hides a failure.

// kubectl apply --dry-run=server through the API server: 300 in a namespace the webhooks see, 300 in the release's
// namespace, which their namespaceSelector leaves out, so the difference is what the webhooks add.
func TestDryRunLatencyWithAndWithoutWebhooks(t *testing.T) {
	ns := namespace(t, "latency")
	const n = 300
	manifest := `apiVersion: apps/v1
kind: Deployment
metadata: {name: latency}
spec:
  replicas: 2
  selector: {matchLabels: {app: latency}}
  template:
    metadata: {labels: {app: latency}}
    spec:
      containers: [{name: web, image: "nginx:1.7.9", ports: [{containerPort: 80}]}]
`
	for _, c := range []struct {
		name, ns string
		mutated  bool
	}{{"with webhooks", ns, true}, {"without webhooks", "rollout-guard", false}} {
		path := writeTemp(t, manifest)
		var took []time.Duration
		for range n {
			began := time.Now()
			out, err := suite.cluster.Kubectl(context.Background(), "-n", c.ns, "apply", "--dry-run=server", "-f", path,
				"-o", "jsonpath={.spec.template.spec.containers[0].readinessProbe}")
			took = append(took, time.Since(began))
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if mutated := strings.TrimSpace(out) != ""; mutated != c.mutated {
				t.Fatalf("%s: readiness probe injected = %v, want %v", c.name, mutated, c.mutated)
			}
		}
		p50, p99 := percentiles(took)
		t.Logf("kubectl apply --dry-run=server, %s: p50 %s, p99 %s over %d", c.name, p50, p99, n)
	}
}

// 200 AdmissionReviews a second over TLS through the webhook Service for 20 s, half to each webhook, then the pods'
// RSS from the kubelet.
func TestWebhookUnderLoadAndPodMemory(t *testing.T) {
	client, base := webhookClient(t)
	ns := namespace(t, "load")
	manifest := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},` +
		`"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},` +
		`"spec":{"containers":[{"name":"web","image":"nginx:1.7.9","ports":[{"containerPort":80}]}]}}}}`
	// What each webhook is sent: the mutating one the manifest as the user wrote it, the validating one the object
	// after mutation and the API server's defaults, as a server-side dry run returns it.
	admitted := kubectl(t, "-n", ns, "create", "--dry-run=server", "-o", "json", "-f", writeTemp(t, manifest))
	// kubectl's output here has the admission warnings first, on stderr
	admitted = admitted[max(0, strings.Index(admitted, "{")):]
	objects := map[bool][]byte{true: []byte(manifest), false: []byte(admitted)}
	body := func(uid int, mutating bool) []byte {
		b, err := json.Marshal(admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{
				UID: types.UID(fmt.Sprint(uid)), Operation: admissionv1.Create, Namespace: "team", Name: "web",
				Kind:     metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"},
				Resource: metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"},
				Object:   runtime.RawExtension{Raw: objects[mutating]},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const rate, seconds = 200, 20
	var mu sync.Mutex
	var took []time.Duration
	var failures []string
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	for i := range rate * seconds {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			mutating := i%2 == 0
			path := base["validating"]
			if mutating {
				path = base["mutating"]
			}
			began := time.Now()
			err := admit(client, path, body(i, mutating), fmt.Sprint(i), mutating)
			mu.Lock()
			defer mu.Unlock()
			took = append(took, time.Since(began))
			if err != nil && len(failures) < 10 {
				failures = append(failures, err.Error())
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("reviews failed under load (first %d):\n%s", len(failures), strings.Join(failures, "\n"))
	}
	p50, p99 := percentiles(took)
	t.Logf("%d reviews at %d/s over TLS through the Service: p50 %s, p99 %s", len(took), rate, p50, p99)
	for component, rss := range podMemory(t) {
		t.Logf("%s after the load, from the kubelet: %s", component, rss)
	}
	for component, peak := range processPeakRSS(t) {
		t.Logf("%s processes' peak RSS (VmHWM, binary pages included): %s", component, peak)
	}
}

// processPeakRSS reads, from /proc on the host (which is the real node), the peak RSS of each rollout-guard process:
// the kubelet's figures are sampled now and then and leave out the binary's mapped pages.
func processPeakRSS(t *testing.T) map[string]string {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	peaks := map[string][]string{}
	for _, f := range dirs {
		cmdline, err := os.ReadFile(f)
		args := strings.Split(string(cmdline), "\x00")
		if err != nil || len(args) < 2 || filepath.Base(args[0]) != "rollout-guard" {
			continue
		}
		status, err := os.ReadFile(filepath.Join(filepath.Dir(f), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				peaks[args[1]] = append(peaks[args[1]], strings.TrimSpace(v))
			}
		}
	}
	if len(peaks["webhook"]) == 0 {
		t.Fatal("no rollout-guard webhook process found in /proc")
	}
	out := map[string]string{}
	for name, p := range peaks {
		out[name] = strings.Join(p, ", ")
	}
	return out
}

// webhookClient trusts the CA the webhook configurations carry and dials their Service's ClusterIP, which the real
// node routes from the host; it returns the client and each webhook's URL.
func webhookClient(t *testing.T) (*http.Client, map[string]string) {
	t.Helper()
	var cfg struct {
		Webhooks []struct {
			ClientConfig struct {
				CABundle string `json:"caBundle"`
				Service  struct{ Name, Namespace, Path string }
			} `json:"clientConfig"`
		} `json:"webhooks"`
	}
	urls := map[string]string{}
	pool := x509.NewCertPool()
	var host string
	for kind, resource := range map[string]string{"mutating": "mutatingwebhookconfigurations", "validating": "validatingwebhookconfigurations"} {
		out := kubectl(t, "get", resource, "-l", "app.kubernetes.io/instance="+releaseName, "-o", "jsonpath={.items[0]}")
		if err := json.Unmarshal([]byte(out), &cfg); err != nil || len(cfg.Webhooks) == 0 {
			t.Fatalf("%s: %v\n%s", resource, err, out)
		}
		cc := cfg.Webhooks[0].ClientConfig
		ca, err := base64.StdEncoding.DecodeString(cc.CABundle)
		if err != nil || !pool.AppendCertsFromPEM(ca) {
			t.Fatalf("%s caBundle: %v", resource, err)
		}
		host = cc.Service.Name + "." + cc.Service.Namespace + ".svc"
		urls[kind] = "https://" + host + cc.Service.Path
	}
	ip := jsonpath(t, "rollout-guard", "service/"+releaseName+"-rollout-guard-webhook", "{.spec.clusterIP}")
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	transport := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
		// every name resolves to the Service: the URL keeps the name the certificate is for
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, net.JoinHostPort(ip, "443"))
		},
		MaxIdleConnsPerHost: 64,
	}
	t.Cleanup(transport.CloseIdleConnections)
	return &http.Client{Transport: transport, Timeout: 10 * time.Second}, urls
}

// admit posts one review and checks the answer: its UID, allowed, and for the mutating webhook a JSON patch.
func admit(client *http.Client, url string, body []byte, uid string, wantPatch bool) error {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var ar admissionv1.AdmissionReview
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &ar) != nil || ar.Response == nil {
		return fmt.Errorf("%s: HTTP %d: %.200s", url, resp.StatusCode, data)
	}
	if string(ar.Response.UID) != uid || !ar.Response.Allowed || (wantPatch && len(ar.Response.Patch) == 0) {
		return fmt.Errorf("%s: allowed %v, %d bytes of patch: %.200s", url, ar.Response.Allowed, len(ar.Response.Patch), data)
	}
	return nil
}

// podMemory reads the kubelet's summary and returns, per component, the largest RSS among its containers.
func podMemory(t *testing.T) map[string]string {
	t.Helper()
	var summary struct {
		Pods []struct {
			PodRef     struct{ Name, Namespace string }
			Containers []struct {
				Name   string
				Memory struct {
					RSSBytes        uint64 `json:"rssBytes"`
					WorkingSetBytes uint64 `json:"workingSetBytes"`
				}
			}
		}
	}
	node := kubectl(t, "get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
	if err := json.Unmarshal([]byte(kubectl(t, "get", "--raw", "/api/v1/nodes/"+node+"/proxy/stats/summary")), &summary); err != nil {
		t.Fatal(err)
	}
	rss := map[string]uint64{}
	working := map[string]uint64{}
	for _, p := range summary.Pods {
		if p.PodRef.Namespace != "rollout-guard" {
			continue
		}
		for _, c := range p.Containers {
			rss[c.Name] = max(rss[c.Name], c.Memory.RSSBytes)
			working[c.Name] = max(working[c.Name], c.Memory.WorkingSetBytes)
		}
	}
	if rss["webhook"] == 0 || rss["watcher"] == 0 {
		t.Fatalf("the kubelet reports no memory for the webhook or watcher containers: %v", rss)
	}
	out := map[string]string{}
	for name, b := range rss {
		out[name] = fmt.Sprintf("%.1f MiB (working set %.1f MiB)", float64(b)/(1<<20), float64(working[name])/(1<<20))
	}
	return out
}

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		return s[min(len(s)-1, int(q*float64(len(s))))].Round(10 * time.Microsecond)
	}
	return at(0.50), at(0.99)
}
