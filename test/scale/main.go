// Command scale measures the rollback watcher against the local cluster:
//
//   - memory: watcher RSS with N Deployments (default 2,000), each with 2
//     ReplicaSets and 2 pods;
//   - reaction: from the moment a Deployment is seen with
//     ProgressDeadlineExceeded to the moment its undo is seen (p50, p99);
//   - ImagePullBackOff: from the bad pod's creation to the undo, against the
//     grace period;
//   - analysis: with -analysed K, K Deployments roll out a new revision under a
//     RolloutAnalysis (a query and its traffic query, every 10 s) against a real
//     Prometheus: the queries it receives per second, and the watcher's RSS
//     before and after;
//   - audit: the watcher's CPU for one audit of every workload, started by a
//     new RolloutPolicy, and admission latency through a webhook (server-side
//     dry runs) idle and while audits run back to back.
//
// It is run by `make bench`, not by CI: it takes several minutes on 2 cores.
//
//	go run ./test/scale -deployments 2000 -out .cache/scale.txt
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
	"github.com/rollout-guard/rollout-guard/test/cluster"
)

func main() {
	n := flag.Int("deployments", 2000, "Deployments for the memory measurement")
	samples := flag.Int("samples", 20, "stalled Deployments for the reaction measurement")
	binDir := flag.String("bin-dir", ".cache/bin", "control plane binaries")
	out := flag.String("out", "", "also write the report to this file")
	memLimit := flag.String("gomemlimit", "chart", "GOMEMLIMIT for the watcher: chart (from the chart's watcher memory limit, as the chart sets it) or a value")
	gogc := flag.String("gogc", "chart", "GOGC for the watcher: chart (the chart's watcher.gogc) or a value")
	heapProfile := flag.String("heap-profile", "", "write the watcher's heap profile, taken with the memory figures, to this file")
	analysed := flag.Int("analysed", 200, "Deployments rolled out under a RolloutAnalysis for the analysis measurement (0: none)")
	flag.Parse()
	env, err := watcherEnv(*memLimit, *gogc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(2)
	}
	report, err := run(*n, *samples, min(*analysed, *n), *binDir, env, *heapProfile)
	fmt.Print(report)
	if *out != "" {
		_ = os.WriteFile(*out, []byte(report), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func run(n, samples, analysed int, binDir string, env map[string]string, heapProfile string) (string, error) {
	var rep strings.Builder
	logf := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		fmt.Fprintln(os.Stderr, time.Now().Format("15:04:05"), line)
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "rollout-guard-scale-")
	if err != nil {
		return "", err
	}
	failed := true
	defer func() {
		if failed {
			fmt.Fprintf(os.Stderr, "scale: logs kept in %s/logs\n", dir)
		} else {
			_ = os.RemoveAll(dir)
		}
	}()
	absBin, _ := filepath.Abs(binDir)
	binary := filepath.Join(dir, "rollout-guard")
	// Built as `make image` builds it: static, without check's chart rendering, as it ships in the image.
	build := exec.Command("go", "build", "-trimpath", "-tags", "norender", "-o", binary, "./cmd/rollout-guard")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build: %v\n%s", err, out)
	}
	c, err := cluster.Start(ctx, cluster.Options{BinDir: absBin, Dir: dir, Logf: logf})
	if err != nil {
		return "", err
	}
	defer c.Stop()
	for _, dir := range []string{"charts/rollout-guard/files/crds", "charts/rollout-guard/files/policyreports"} {
		if err := c.InstallCRDs(ctx, dir); err != nil {
			return "", err
		}
	}
	prom, err := c.StartPrometheus(ctx)
	if err != nil {
		return "", err
	}
	cfg := filepath.Join(dir, "config.yaml")
	// Audits start by a policy change only (and once at start), so that the one measured is alone.
	config := "audit: {interval: 1h}\nrollback:\n  imagePullGracePeriod: 5s\n  circuitBreaker: {maxStalls: 1000, window: 5m}\nanalysis:\n  prometheus: {address: " + prom.URL + "}\n"
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return "", err
	}
	// The watcher inherits this process's environment: the Go runtime settings the chart gives it.
	for k, v := range env {
		if err := os.Setenv(k, v); err != nil {
			return "", err
		}
	}
	pprofAddr, err := freeAddr()
	if err != nil {
		return "", err
	}
	metricsURL, err := c.StartWatcher(ctx, "rollout-guard-watcher", binary, false, "--kubeconfig", c.Kubeconfig, "--namespace", "default", "--config", cfg, "--pprof-addr", pprofAddr)
	for k := range env {
		if unsetErr := os.Unsetenv(k); err == nil {
			err = unsetErr
		}
	}
	if err != nil {
		return "", err
	}
	watcherPID := c.Processes[len(c.Processes)-1].PID
	restCfg, err := c.RESTConfig()
	if err != nil {
		return "", err
	}
	restCfg.QPS, restCfg.Burst = 500, 1000
	// The dry runs measured for admission latency carry rollout-guard's warnings; hundreds of them say nothing here.
	restCfg.WarningHandler = rest.NoWarnings{}
	cs := kubernetes.NewForConfigOrDie(restCfg)

	fmt.Fprintf(&rep, "rollout-guard watcher scale report (%s, %d cores)\n\n", time.Now().UTC().Format(time.RFC3339), runtimeCPUs())

	// Memory: N Deployments x (2 ReplicaSets, 2 pods).
	start := time.Now()
	namespaces := (n + 99) / 100
	for i := range namespaces {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("scale-%d", i)}}, metav1.CreateOptions{}); err != nil {
			return rep.String(), err
		}
	}
	if err := parallel(n, 32, func(i int) error {
		_, err := cs.AppsV1().Deployments(fmt.Sprintf("scale-%d", i/100)).Create(ctx, deployment(fmt.Sprintf("app-%d", i), "nginx:1.7.9", 2), metav1.CreateOptions{})
		return err
	}); err != nil {
		return rep.String(), err
	}
	logf("created %d Deployments in %s", n, time.Since(start).Round(time.Second))
	if err := waitAllAvailable(ctx, cs, namespaces, n, 20*time.Minute, logf); err != nil {
		return rep.String(), err
	}
	if err := parallel(n, 32, func(i int) error {
		patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.9.1"}]}}}}`)
		_, err := cs.AppsV1().Deployments(fmt.Sprintf("scale-%d", i/100)).Patch(ctx, fmt.Sprintf("app-%d", i), types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		return err
	}); err != nil {
		return rep.String(), err
	}
	if err := waitAllAvailable(ctx, cs, namespaces, n, 20*time.Minute, logf); err != nil {
		return rep.String(), err
	}
	time.Sleep(20 * time.Second) // let the watcher mark every ReplicaSet and settle
	var rsCount, podCount int
	for i := range namespaces {
		ns := fmt.Sprintf("scale-%d", i)
		rs, _ := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		pods, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		rsCount += len(rs.Items)
		podCount += len(pods.Items)
	}
	m := memory(watcherPID)
	heap := promMetric(metricsURL, "go_memstats_heap_inuse_bytes") / (1 << 20)
	fmt.Fprintf(&rep, "memory: %d Deployments, %d ReplicaSets, %d pods: watcher RSS %.1f MiB (anonymous %.1f, file-backed %.1f; peak %.1f), Go heap in use %.1f MiB, GOGC=%s GOMEMLIMIT=%s; goal RSS <= 100 MiB\n",
		n, rsCount, podCount, m["VmRSS:"], m["RssAnon:"], m["RssFile:"], m["VmHWM:"], heap, env["GOGC"], env["GOMEMLIMIT"])
	fmt.Fprintf(&rep, "setup took %s\n\n", time.Since(start).Round(time.Second))
	if heapProfile != "" {
		if err := fetch("http://"+pprofAddr+"/debug/pprof/heap", heapProfile); err != nil {
			return rep.String(), err
		}
		fmt.Fprintf(&rep, "heap profile: %s (go tool pprof -sample_index=inuse_space %s)\n\n", heapProfile, heapProfile)
	}
	if analysed > 0 {
		if err := measureAnalysis(ctx, c, cs, analysed, watcherPID, prom.URL, &rep, logf); err != nil {
			return rep.String(), err
		}
	}
	if samples > 0 {
		if err := measureReactions(ctx, cs, samples, &rep, logf); err != nil {
			return rep.String(), err
		}
	}
	// Last: it starts a webhook (and its watcher), which would race the measured watcher above.
	if err := measureAudit(ctx, c, cs, dynamic.NewForConfigOrDie(restCfg), binary, watcherPID, metricsURL, &rep, logf); err != nil {
		return rep.String(), err
	}
	failed = false
	return rep.String(), nil
}

// measureReactions measures the time from a stall signal to the undo.
func measureReactions(ctx context.Context, cs kubernetes.Interface, samples int, rep io.Writer, logf func(string, ...any)) error {
	// Reaction to ProgressDeadlineExceeded; the image-pull grace is set long so that only the deadline triggers.
	reaction, err := measureReaction(ctx, cs, samples, "deadline", map[string]string{"rollout-guard.io/image-pull-grace-period": "30m"}, logf)
	if err != nil {
		return err
	}
	fmt.Fprintf(rep, "ProgressDeadlineExceeded seen -> undo seen, %d Deployments: %s; goal p99 <= 1s\n", len(reaction), summary(reaction))
	pull, err := measureReaction(ctx, cs, samples, "pull", map[string]string{"rollout-guard.io/image-pull-grace-period": "5s"}, logf)
	if err != nil {
		return err
	}
	fmt.Fprintf(rep, "bad pod created -> undo seen, grace 5s, %d Deployments: %s; goal <= grace + 2s\n", len(pull), summary(pull))
	return nil
}

// measureAudit measures the watcher's CPU for one audit of every workload (started by a new RolloutPolicy), and
// admission latency (server-side dry-run creates through a webhook) while idle and while audits run back to back.
func measureAudit(ctx context.Context, c *cluster.Cluster, cs kubernetes.Interface, dyn dynamic.Interface, binary string, watcherPID int, metricsURL string, rep io.Writer, logf func(string, ...any)) error {
	cfg := filepath.Join(c.Dir, "webhook-config.yaml")
	if err := os.WriteFile(cfg, []byte("audit: {enabled: false}\n"), 0o600); err != nil {
		return err
	}
	if err := c.StartRolloutGuard(ctx, binary, cfg, false, logf); err != nil {
		return err
	}
	runs := func() float64 { return promMetric(metricsURL, `rollout_guard_audit_runs_total{result="success"}`) }
	policy := func(i int) error {
		rp := fmt.Sprintf(`{"apiVersion":"rollout-guard.io/v1alpha1","kind":"RolloutPolicy","metadata":{"name":"scale-audit"},"spec":{"rego":%q}}`,
			fmt.Sprintf("package rollout_guard.scale_audit\n\ndeny contains \"metadata.labels.team is required (%d)\" if { not input.object.metadata.labels.team }\n", i))
		path := filepath.Join(c.Dir, "scale-audit.json")
		if err := os.WriteFile(path, []byte(rp), 0o600); err != nil {
			return err
		}
		out, err := c.Kubectl(ctx, "apply", "-f", path)
		if err != nil {
			return fmt.Errorf("apply the RolloutPolicy: %v\n%s", err, out)
		}
		return nil
	}
	// An exception's change of spec starts an audit as a policy's does, without making the webhook compile its
	// policies again; a change of its labels alone starts none. The two make the same writes, so the difference
	// between their admission latencies is the audit's.
	exceptions := dyn.Resource(v1alpha1.GroupVersion.WithResource("rolloutpolicyexceptions")).Namespace("scale-0")
	expires := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	reason := "starts an audit"
	exception := func(i int, audit bool) error {
		label := "0"
		if audit {
			reason = fmt.Sprintf("starts audit %d", i)
		} else {
			label = strconv.Itoa(i)
		}
		rpe := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": v1alpha1.GroupVersion.String(), "kind": "RolloutPolicyException",
			"metadata": map[string]any{"name": "scale-audit", "namespace": "scale-0", "labels": map[string]any{"change": label}},
			"spec": map[string]any{"policies": []any{"scale-audit"}, "workloads": map[string]any{"names": []any{"no-such-workload"}},
				"reason": reason, "expires": expires},
		}}
		if _, err := exceptions.Apply(ctx, "scale-audit", rpe, metav1.ApplyOptions{FieldManager: "scale", Force: true}); err != nil {
			return fmt.Errorf("apply the RolloutPolicyException: %w", err)
		}
		return nil
	}
	waitRuns := func(after float64) error {
		return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 5*time.Minute, true, func(context.Context) (bool, error) { return runs() > after, nil })
	}
	// Wait for the audit the watcher ran at start, then measure one started by a policy.
	if err := waitRuns(0); err != nil {
		return fmt.Errorf("the watcher's first audit: %w", err)
	}
	time.Sleep(5 * time.Second)
	r0, cpu0 := runs(), cpuTime(watcherPID)
	if err := policy(0); err != nil {
		return err
	}
	if err := waitRuns(r0); err != nil {
		return fmt.Errorf("the audit a new RolloutPolicy starts: %w", err)
	}
	cpu := cpuTime(watcherPID) - cpu0
	out, _ := c.Kubectl(ctx, "get", "policyreports.wgpolicyk8s.io", "-A", "--no-headers")
	fmt.Fprintf(rep, "audit: %.0f workloads judged in %.2f s (rollout_guard_audit_duration_seconds), watcher CPU %s for the audit "+
		"(with its idle reconciles), %d PolicyReports; goal < 10 s of CPU for 2,000 Deployments\n",
		promMetric(metricsURL, "rollout_guard_audit_workloads"), promMetric(metricsURL, "rollout_guard_audit_duration_seconds"),
		cpu.Round(10*time.Millisecond), len(strings.Fields(strings.TrimSpace(out)))/8)

	const k = 500
	// busy times admission while the exception changes every 3 s, for as long as 3 audits take when they start
	// audits (one after another, after the 2 s debounce), and for as long again when they do not.
	var took time.Duration
	busy := func(audit bool) ([]time.Duration, float64, error) {
		busyCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		r1, start := runs(), time.Now()
		go func() {
			for i := 1; ; i++ {
				if err := exception(i, audit); err != nil {
					done <- err
					return
				}
				select {
				case <-busyCtx.Done():
					done <- nil
					return
				case <-time.After(3 * time.Second):
				}
			}
		}()
		more := func(i int) bool { return i < k || (runs()-r1 < 3 && i < 100*k) }
		if !audit {
			more = func(i int) bool { return i < k || time.Since(start) < took }
		}
		ds, err := admissionLatencies(ctx, cs, more)
		stop()
		if perr := <-done; err == nil {
			err = perr
		}
		if audit {
			took = time.Since(start)
		}
		return ds, runs() - r1, err
	}
	r0 = runs()
	if err := exception(0, true); err != nil {
		return err
	}
	if err := waitRuns(r0); err != nil {
		return fmt.Errorf("the audit a new RolloutPolicyException starts: %w", err)
	}
	idle, err := admissionLatencies(ctx, cs, func(i int) bool { return i < k })
	if err != nil {
		return err
	}
	audited, audits, err := busy(true)
	if err != nil {
		return err
	}
	time.Sleep(15 * time.Second) // the last audit ends
	written, unaudited, err := busy(false)
	if err != nil {
		return err
	}
	fmt.Fprintf(rep, "admission (server-side dry-run create through both webhooks): idle, %d requests: %s; "+
		"exception changes starting %.0f audits, %d requests: %s; the same changes starting %.0f audits, %d requests: %s\n",
		len(idle), summary(idle), audits, len(audited), summary(audited), unaudited, len(written), summary(written))
	return nil
}

// admissionLatencies times server-side dry-run creates of a Deployment, one after another, while more(i).
func admissionLatencies(ctx context.Context, cs kubernetes.Interface, more func(i int) bool) ([]time.Duration, error) {
	var ds []time.Duration
	for i := 0; more(i); i++ {
		start := time.Now()
		_, err := cs.AppsV1().Deployments("scale-0").Create(ctx, deployment(fmt.Sprintf("dry-%d", i), "nginx:1.7.9", 2), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) {
			return nil, fmt.Errorf("dry-run create: %w", err)
		}
		ds = append(ds, time.Since(start))
	}
	return ds, nil
}

// cpuTime is the user and system CPU time a process has used, from /proc (clock ticks of 10 ms).
func cpuTime(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// measureAnalysis rolls k of the Deployments out to a new revision under one RolloutAnalysis that selects them by
// label, and measures the query load on Prometheus and the watcher's RSS while their analyses run (bake time 10m,
// so that every revision stays under analysis while it is measured). The query and its traffic query answer with
// data (or vector), so that each sample is the two queries a real one is.
func measureAnalysis(ctx context.Context, c *cluster.Cluster, cs kubernetes.Interface, k, watcherPID int, promURL string, rep io.Writer, logf func(string, ...any)) error {
	before := memory(watcherPID)["VmRSS:"]
	analysis := `apiVersion: rollout-guard.io/v1alpha1
kind: RolloutAnalysis
metadata: {name: scale}
spec:
  interval: 10s
  failureLimit: 2
  bakeTime: 10m
  selector: {workloadSelector: {matchLabels: {analysed: "true"}}}
  queries:
  - name: error-rate
    query: '(sum(rate(http_requests_total{namespace="{{.Namespace}}",pod=~"{{.Pods}}",code=~"5.."}[1m])) or vector(0))'
    max: "0.05"
    traffic: 'sum(rate(http_requests_total{namespace="{{.Namespace}}",pod=~"{{.Pods}}"}[1m])) or vector(5)'
    minTraffic: "1"
`
	path := filepath.Join(c.Dir, "analysis.yaml")
	if err := os.WriteFile(path, []byte(analysis), 0o600); err != nil {
		return err
	}
	if out, err := c.Kubectl(ctx, "apply", "-f", path); err != nil {
		return fmt.Errorf("apply the RolloutAnalysis: %v\n%s", err, out)
	}
	if err := parallel(k, 32, func(i int) error {
		patch := []byte(`{"metadata":{"labels":{"analysed":"true"}},"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.14.2"}]}}}}`)
		_, err := cs.AppsV1().Deployments(fmt.Sprintf("scale-%d", i/100)).Patch(ctx, fmt.Sprintf("app-%d", i), types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		return err
	}); err != nil {
		return err
	}
	logf("%d Deployments rolling out under analysis", k)
	time.Sleep(60 * time.Second) // their rollouts complete, every analysis samples
	queries := func() float64 {
		return promMetric(promURL+"/metrics", `prometheus_http_requests_total{code="200",handler="/api/v1/query"}`)
	}
	q0, t0 := queries(), time.Now()
	time.Sleep(60 * time.Second)
	rate := (queries() - q0) / time.Since(t0).Seconds()
	after := memory(watcherPID)["VmRSS:"]
	fmt.Fprintf(rep, "analysis: %d Deployments with a new revision under one RolloutAnalysis (a query and its traffic query every 10s): Prometheus received %.1f queries/s = %.2f queries per workload per interval per query (goal 1; the traffic query is a second one); watcher RSS %.1f MiB before, %.1f MiB after (+%.1f MiB; goal < 20 MiB)\n\n",
		k, rate, rate*10/float64(k)/2, before, after, after-before)
	return nil
}

// promMetric reads one sample, named with its labels as the exposition format prints them, from a metrics endpoint.
func promMetric(url, series string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return v
		}
	}
	return 0
}

func deployment(name, image string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": name}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas), RevisionHistoryLimit: ptr.To[int32](5),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: image}}},
			},
		},
	}
}

func waitAllAvailable(ctx context.Context, cs kubernetes.Interface, namespaces, n int, timeout time.Duration, logf func(string, ...any)) error {
	last := time.Now()
	return wait.PollUntilContextTimeout(ctx, 3*time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		done := 0
		for i := range namespaces {
			list, err := cs.AppsV1().Deployments(fmt.Sprintf("scale-%d", i)).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			for _, d := range list.Items {
				if d.Status.ObservedGeneration == d.Generation && d.Status.UpdatedReplicas == 2 && d.Status.AvailableReplicas == 2 && d.Status.Replicas == 2 {
					done++
				}
			}
		}
		if time.Since(last) > 30*time.Second {
			logf("%d of %d Deployments rolled out", done, n)
			last = time.Now()
		}
		return done == n, nil
	})
}

// measureReaction makes k Deployments good, then breaks them all at once,
// and measures, per Deployment, from the signal to the undo, both as seen
// through a watch: the deadline condition, or the bad pod's creation.
func measureReaction(ctx context.Context, cs kubernetes.Interface, k int, kind string, annotations map[string]string, logf func(string, ...any)) ([]time.Duration, error) {
	ns := "reaction-" + kind
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	for i := range k {
		d := deployment(fmt.Sprintf("r-%d", i), "nginx:1.9.1", 1)
		d.Annotations = annotations
		d.Spec.Strategy = appsv1.DeploymentStrategy{}
		d.Spec.ProgressDeadlineSeconds = ptr.To[int32](10)
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			return nil, err
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		sets, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		good := 0
		for _, rs := range sets.Items {
			if rs.Annotations["rollout-guard.io/known-good"] != "" {
				good++
			}
		}
		return good == k, nil
	}); err != nil {
		return nil, fmt.Errorf("wait for known-good marks in %s: %w", ns, err)
	}
	var mu sync.Mutex
	// sawBad: the watch has shown the bad template, so a good one after it is an undo
	// (the watch's first events still show the old, good template).
	signal, undone, sawBad := map[string]time.Time{}, map[string]time.Time{}, map[string]bool{}
	dw, err := cs.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	defer dw.Stop()
	pw, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	defer pw.Stop()
	go func() {
		for ev := range pw.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || kind != "pull" || p.Spec.Containers[0].Image != "nginx:1.161" {
				continue
			}
			mu.Lock()
			if _, seen := signal[p.Labels["app"]]; !seen {
				signal[p.Labels["app"]] = time.Now()
			}
			mu.Unlock()
		}
	}()
	for i := range k {
		patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.161"}]}}}}`)
		if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, fmt.Sprintf("r-%d", i), types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return nil, err
		}
	}
	deadline := time.After(3 * time.Minute)
	for {
		mu.Lock()
		done := len(undone)
		mu.Unlock()
		if done == k {
			break
		}
		select {
		case ev := <-dw.ResultChan():
			d, ok := ev.Object.(*appsv1.Deployment)
			if !ok {
				continue
			}
			now := time.Now()
			mu.Lock()
			if kind == "deadline" {
				for _, c := range d.Status.Conditions {
					if c.Type == appsv1.DeploymentProgressing && c.Reason == "ProgressDeadlineExceeded" {
						if _, seen := signal[d.Name]; !seen {
							signal[d.Name] = now
						}
					}
				}
			}
			if d.Spec.Template.Spec.Containers[0].Image == "nginx:1.161" {
				sawBad[d.Name] = true
			}
			if _, bad := signal[d.Name]; bad && sawBad[d.Name] && d.Spec.Template.Spec.Containers[0].Image == "nginx:1.9.1" {
				if _, seen := undone[d.Name]; !seen {
					undone[d.Name] = now
				}
			}
			mu.Unlock()
		case <-deadline:
			mu.Lock()
			signalled := len(signal)
			mu.Unlock()
			if done == signalled && done > 0 {
				// The rest never got a stall signal (the Deployment controller did not report its deadline):
				// nothing for the watcher to react to, so they do not count against its reaction time.
				logf("%s: %d of %d never signalled a stall within 3 minutes; measured the %d that did", kind, k-signalled, k, signalled)
				var out []time.Duration
				for name, t := range undone {
					out = append(out, t.Sub(signal[name]))
				}
				return out, nil
			}
			logf("%s: only %d of %d undone", kind, len(undone), k)
			for i := range k {
				name := fmt.Sprintf("r-%d", i)
				if _, ok := undone[name]; ok {
					continue
				}
				d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					continue
				}
				var conds []string
				for _, c := range d.Status.Conditions {
					conds = append(conds, string(c.Type)+"="+string(c.Status)+"/"+c.Reason)
				}
				_, sawSignal := signal[name]
				logf("  %s: image %s, signal seen %v, conditions %v, gen %d/%d, last action %s", name, d.Spec.Template.Spec.Containers[0].Image,
					sawSignal, conds, d.Status.ObservedGeneration, d.Generation, d.Annotations["rollout-guard.io/last-action"])
			}
			return nil, fmt.Errorf("%s: %d of %d Deployments rolled back within 3 minutes", kind, len(undone), k)
		}
	}
	var out []time.Duration
	for name, t := range undone {
		out = append(out, t.Sub(signal[name]))
	}
	return out, nil
}

func summary(ds []time.Duration) string {
	slices.Sort(ds)
	pct := func(p int) time.Duration { return ds[min(len(ds)-1, len(ds)*p/100)] }
	return fmt.Sprintf("p50 %s, p99 %s, max %s", pct(50).Round(time.Millisecond), pct(99).Round(time.Millisecond), ds[len(ds)-1].Round(time.Millisecond))
}

func parallel(n, workers int, fn func(int) error) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					errs <- err
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}

// memory reads the memory lines of /proc/PID/status, in MiB.
func memory(pid int) map[string]float64 {
	out := map[string]float64{}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		if fields := strings.Fields(line); len(fields) >= 2 {
			kb, _ := strconv.ParseFloat(fields[1], 64)
			out[fields[0]] = kb / 1024
		}
	}
	return out
}

func runtimeCPUs() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func fetch(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// watcherEnv is the watcher's GOMEMLIMIT and GOGC: the chart's unless given.
// An empty value leaves the Go default.
func watcherEnv(memLimit, gogc string) (map[string]string, error) {
	raw, err := os.ReadFile("charts/rollout-guard/values.yaml")
	if err != nil {
		return nil, fmt.Errorf("read the chart's values (run from the repository root): %w", err)
	}
	var values struct {
		Watcher struct {
			GOGC      *int `json:"gogc"`
			Resources struct {
				Limits map[string]resource.Quantity `json:"limits"`
			} `json:"resources"`
		} `json:"watcher"`
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		return nil, fmt.Errorf("chart values: %w", err)
	}
	env := map[string]string{}
	switch memLimit {
	case "chart":
		if q, ok := values.Watcher.Resources.Limits["memory"]; ok {
			env["GOMEMLIMIT"] = strconv.FormatInt(q.Value(), 10) // bytes, as resourceFieldRef gives it
		}
	case "":
	default:
		env["GOMEMLIMIT"] = memLimit
	}
	switch gogc {
	case "chart":
		if values.Watcher.GOGC != nil {
			env["GOGC"] = strconv.Itoa(*values.Watcher.GOGC)
		}
	case "":
	default:
		env["GOGC"] = gogc
	}
	return env, nil
}
