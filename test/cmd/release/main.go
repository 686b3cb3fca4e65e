// Command release packages the Helm chart for a release and pushes it as an OCI artifact next to the image that
// `make image-push` pushed: the packaged chart's version and appVersion are the release's VERSION, and its default
// image is REGISTRY/rollout-guard at that version, pinned by digest, so that `helm install` of the released chart
// runs exactly the image released with it.
//
//	release --chart charts/rollout-guard --version 1.2.3 --registry registry.example.com/platform \
//	    --digest sha256:... --helm .cache/bin/helm --out .cache/release
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	flags := flag.NewFlagSet("release", flag.ContinueOnError)
	chart := flags.String("chart", "charts/rollout-guard", "the chart directory")
	version := flags.String("version", "", "the release version (semantic version)")
	registry := flags.String("registry", "", "host[:port]/path the image was pushed to; the chart goes to REGISTRY/charts")
	digest := flags.String("digest", "", "the pushed image index's digest")
	helm := flags.String("helm", "helm", "the helm binary")
	out := flags.String("out", ".cache/release", "where the packaged chart is written")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *version == "" || *registry == "" || !strings.HasPrefix(*digest, "sha256:") {
		return fmt.Errorf("need --version, --registry and --digest sha256:... (got %q, %q, %q)", *version, *registry, *digest)
	}
	staged := filepath.Join(*out, "chart", filepath.Base(*chart))
	if err := os.RemoveAll(filepath.Join(*out, "chart")); err != nil {
		return err
	}
	if err := copyDir(*chart, staged); err != nil {
		return fmt.Errorf("stage the chart: %w", err)
	}
	values := filepath.Join(staged, "values.yaml")
	data, err := os.ReadFile(values)
	if err != nil {
		return err
	}
	stamped, err := stampImage(string(data), *registry+"/rollout-guard", *version, *digest)
	if err != nil {
		return err
	}
	if err := os.WriteFile(values, []byte(stamped), 0o644); err != nil {
		return err
	}
	if err := helmRun(*helm, "package", staged, "--version", *version, "--app-version", *version, "--destination", *out); err != nil {
		return err
	}
	pushArgs := []string{"push", filepath.Join(*out, "rollout-guard-"+*version+".tgz"), "oci://" + *registry + "/charts"}
	if loopback(*registry) {
		pushArgs = append(pushArgs, "--plain-http")
	}
	if err := helmRun(*helm, pushArgs...); err != nil {
		return err
	}
	fmt.Printf("released rollout-guard %s:\n  image %s/rollout-guard:%s@%s\n  chart oci://%s/charts/rollout-guard --version %s\n",
		*version, *registry, *version, *digest, *registry, *version)
	return nil
}

// stampImage sets image.repository, image.tag and image.digest in the chart's values, keeping every comment.
func stampImage(values, repository, tag, digest string) (string, error) {
	for key, value := range map[string]string{"repository": repository, "tag": tag, "digest": digest} {
		re := regexp.MustCompile(`(?m)^(  ` + key + `:) .*$`)
		if !re.MatchString(values) {
			return "", fmt.Errorf("values.yaml has no image.%s to stamp", key)
		}
		values = re.ReplaceAllString(values, `${1} "`+value+`"`)
	}
	return values, nil
}

func loopback(registry string) bool {
	host := strings.SplitN(registry, "/", 2)[0]
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}

func helmRun(helm string, args ...string) error {
	cmd := exec.Command(helm, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("helm %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}
