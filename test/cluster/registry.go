package cluster

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
)

// KnownImages is the simulated registry: the only images a pod can "pull".
// A pod turns Ready only when every one of its images is listed here; any
// other image (a typo like nginx:1.161) leaves it in ImagePullBackOff.
var KnownImages = []string{
	"nginx:1.7.9", "nginx:1.9.1", "nginx:1.14.2", "nginx:1.16.1", "nginx:latest", "nginx",
	"httpd:2.2.31", "httpd:2.2.32", "httpd:2.4.16", "httpd:2.4.17", "httpd:2.4.18",
	"tomcat:7", "tomcat:8", "busybox", "redis",
	// apps that declare no port
	"ghcr.io/example/worker:2.3.0", "grafana/k6:0.52.0", "ghcr.io/example/llm-server:1.4.1",
}

// Annotations that steer the simulation of a pod.
const (
	CrashAnnotation      = "sim.rollout-guard.io/crash"
	NeverReadyAnnotation = "sim.rollout-guard.io/never-ready"
)

//go:embed stages.yaml.tmpl
var stagesTemplate string

// Stages renders the kwok Stage objects that implement the simulated registry
// and the crash and never-ready annotations.
func Stages(images []string) ([]byte, error) {
	quoted := make([]string, len(images))
	for i, img := range images {
		b, err := json.Marshal(img)
		if err != nil {
			return nil, fmt.Errorf("quote image %q: %w", img, err)
		}
		quoted[i] = string(b)
	}
	// kwok's own templates use {{ }}, so ours use [[ ]].
	tmpl, err := template.New("stages").Delims("[[", "]]").Parse(stagesTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse stage template: %w", err)
	}
	var out bytes.Buffer
	err = tmpl.Execute(&out, map[string]string{
		"ImagesJSON": "[" + strings.Join(quoted, ",") + "]",
		"ImagesList": strings.Join(quoted, " "),
		"Crash":      CrashAnnotation,
		"NeverReady": NeverReadyAnnotation,
	})
	if err != nil {
		return nil, fmt.Errorf("render stage template: %w", err)
	}
	return out.Bytes(), nil
}
