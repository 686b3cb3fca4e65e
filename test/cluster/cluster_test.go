package cluster

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

func TestStartReportsMissingBinary(t *testing.T) {
	_, err := Start(context.Background(), Options{BinDir: t.TempDir(), Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "etcd: binary not found") || !strings.Contains(err.Error(), "make cluster-bins") {
		t.Fatalf("error = %v, want one naming etcd and make cluster-bins", err)
	}
}

func TestStartReportsPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = Start(context.Background(), Options{BinDir: BinDir(), Dir: t.TempDir(), APIServerPort: port})
	want := "kube-apiserver: port " + strconv.Itoa(port) + " on 127.0.0.1 is already in use"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

// A component that exits at start is named with its log file and the log's
// last lines, within seconds rather than after a readiness timeout.
func TestStartReportsComponentThatWillNotStart(t *testing.T) {
	real := BinDir()
	fake := t.TempDir()
	for _, b := range []string{"etcd", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if err := os.Symlink(filepath.Join(real, b), filepath.Join(fake, b)); err != nil {
			t.Fatal(err)
		}
	}
	script := "#!/bin/sh\necho 'error: invalid flag --simulated-breakage' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(fake, "kube-apiserver"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	began := time.Now()
	_, err := Start(context.Background(), Options{BinDir: fake, Dir: dir})
	if err == nil {
		t.Fatal("Start succeeded with a broken kube-apiserver")
	}
	for _, want := range []string{"kube-apiserver exited before it was ready", filepath.Join(dir, "logs", "kube-apiserver.log"), "invalid flag --simulated-breakage"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	if took := time.Since(began); took > 30*time.Second {
		t.Errorf("took %s to report the failure", took)
	}
}

// The rendered stages are valid YAML documents naming every known image.
func TestStagesRender(t *testing.T) {
	out, err := Stages(KnownImages)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(out), "\n---\n")
	names := map[string]bool{}
	for _, d := range docs {
		var stage struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(d), &stage); err != nil {
			t.Fatalf("stage is not YAML: %v\n%s", err, d)
		}
		if stage.Kind != "Stage" {
			t.Errorf("document kind %q, want Stage", stage.Kind)
		}
		names[stage.Metadata.Name] = true
	}
	for _, n := range []string{"node-ready", "pod-ready", "pod-image-pull-backoff", "pod-crash-loop", "pod-never-ready", "pod-delete"} {
		if !names[n] {
			t.Errorf("stage %s missing; have %v", n, names)
		}
	}
	for _, img := range KnownImages {
		if !strings.Contains(string(out), strconv.Quote(img)) {
			t.Errorf("image %s not in the rendered stages", img)
		}
	}
}

// What make dev-up starts detached, make dev-down stops: no process is left.
func TestDetachedClusterStopsWithoutLeftovers(t *testing.T) {
	dir := t.TempDir()
	c, err := Start(context.Background(), Options{BinDir: BinDir(), Dir: dir, Detached: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SaveState(); err != nil {
		c.Stop()
		t.Fatal(err)
	}
	if len(c.Processes) != 5 {
		t.Errorf("started %d processes, want 5", len(c.Processes))
	}
	if err := StopDetached(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Processes {
		if alive(p.PID) {
			t.Errorf("%s (pid %d) still running after StopDetached", p.Name, p.PID)
		}
	}
	if _, err := LoadState(dir); !os.IsNotExist(errors.Unwrap(err)) {
		t.Errorf("state file still there after stop: %v", err)
	}
}
