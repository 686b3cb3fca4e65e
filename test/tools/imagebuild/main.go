// Command imagebuild builds container images from Go packages without a Docker engine, and pushes them.
//
// An image is one layer on nothing: the static binary at /NAME, an /etc/passwd and /etc/group that name the
// nonroot user (65532) and an empty /tmp. No base image is pulled, so no shell, no package manager and nothing a
// registry outside the build could change. Every timestamp is --created (the commit's time), entries are sorted and
// owned by root, and the binaries are built with -trimpath: the same source gives the same digest.
//
//	imagebuild build --dir REPO --package ./cmd/rollout-guard --name rollout-guard \
//	    --platforms linux/amd64,linux/arm64 --ldflags '-X main.version=v1' --label org.opencontainers.image.version=v1 \
//	    --user 65532:65532 --created 1700000000 --layout .cache/image
//	imagebuild push --layout .cache/image [--env KEY=VALUE]... [--digest-file F] REF...
//	imagebuild digest --layout .cache/image
//
// build writes an OCI image layout whose index.json points at one image index (one image per platform) and prints
// the index's digest. push sends that index to every REF (plain HTTP for loopback registries, as the registry
// clients do); --env adds environment variables to every image first, which gives a variant of the same binary
// (the test stand-ins use it to bake a behaviour into a tag).
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: imagebuild build|push|digest [flags]")
		return 2
	}
	var err error
	switch args[0] {
	case "build":
		err = runBuild(args[1:], stdout)
	case "push":
		err = runPush(args[1:], stdout)
	case "digest":
		err = runDigest(args[1:], stdout)
	default:
		err = fmt.Errorf("unknown command %q (build, push or digest)", args[0])
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "imagebuild:", err)
		return 1
	}
	return 0
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type buildOptions struct {
	dir, pkg, name, ldflags, tags, user, layoutDir string
	platforms                                      []string
	labels, env                                    map[string]string
	args                                           []string
	created                                        time.Time
}

func runBuild(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	var o buildOptions
	var labels, env, entryArgs listFlag
	var platforms string
	var created int64
	fs.StringVar(&o.dir, "dir", ".", "the Go module to build in")
	fs.StringVar(&o.pkg, "package", "", "the main package, relative to --dir")
	fs.StringVar(&o.name, "name", "", "the binary's name in the image (/NAME; default: the package's last element)")
	fs.StringVar(&o.ldflags, "ldflags", "", "go build -ldflags")
	fs.StringVar(&o.tags, "tags", "", "go build -tags")
	fs.StringVar(&o.user, "user", "65532:65532", "the image's user")
	fs.StringVar(&o.layoutDir, "layout", "", "the OCI image layout to write (replaced)")
	fs.StringVar(&platforms, "platforms", "linux/amd64", "comma-separated os/arch list")
	fs.Int64Var(&created, "created", 0, "creation time, seconds since the epoch (SOURCE_DATE_EPOCH)")
	fs.Var(&labels, "label", "KEY=VALUE label of every image and annotation of the index (repeatable)")
	fs.Var(&env, "env", "KEY=VALUE environment of every image (repeatable)")
	fs.Var(&entryArgs, "arg", "argument after the entrypoint (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.pkg == "" || o.layoutDir == "" {
		return errors.New("build needs --package and --layout")
	}
	if o.name == "" {
		o.name = filepath.Base(o.pkg)
	}
	var err error
	if o.labels, err = pairs(labels); err != nil {
		return err
	}
	if o.env, err = pairs(env); err != nil {
		return err
	}
	o.platforms = strings.Split(platforms, ",")
	o.args = entryArgs
	o.created = time.Unix(created, 0).UTC()
	idx, err := build(o)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(o.layoutDir); err != nil {
		return fmt.Errorf("replace %s: %w", o.layoutDir, err)
	}
	p, err := layout.Write(o.layoutDir, empty.Index)
	if err != nil {
		return fmt.Errorf("write layout %s: %w", o.layoutDir, err)
	}
	if err := p.AppendIndex(idx); err != nil {
		return fmt.Errorf("write index to %s: %w", o.layoutDir, err)
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, digest)
	return nil
}

// build compiles the package once per platform and assembles the index.
func build(o buildOptions) (v1.ImageIndex, error) {
	work, err := os.MkdirTemp("", "imagebuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	base := baseFiles()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, platform := range o.platforms {
		osName, arch, ok := strings.Cut(strings.TrimSpace(platform), "/")
		if !ok {
			return nil, fmt.Errorf("platform %q: want os/arch", platform)
		}
		binary := filepath.Join(work, osName+"-"+arch, o.name)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", o.ldflags, "-tags", o.tags, "-o", binary, o.pkg)
		cmd.Dir = o.dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+osName, "GOARCH="+arch)
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s for %s: %w\n%s", o.pkg, platform, err, out)
		}
		img, err := image(o, binary, base, osName, arch)
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", platform, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: osName, Architecture: arch}},
		})
	}
	if len(o.labels) > 0 {
		idx = mutate.Annotations(idx, o.labels).(v1.ImageIndex)
	}
	return idx, nil
}

type file struct {
	path string
	mode int64
	uid  int
	data []byte // nil for a directory
}

// baseFiles are what a static Go program expects of a filesystem: a user database that names the nonroot user
// (so tools that resolve the uid show a name) and a writable /tmp.
func baseFiles() []file {
	return []file{
		{path: "etc", mode: 0o755},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{path: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "home", mode: 0o755},
		{path: "home/nonroot", mode: 0o700, uid: 65532},
		{path: "tmp", mode: 0o1777},
	}
}

func image(o buildOptions, binary string, base []file, osName, arch string) (v1.Image, error) {
	data, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	files := append(append([]file(nil), base...), file{path: o.name, mode: 0o755, data: data})
	layerTar, err := tarOf(files, o.created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: o.created}, CreatedBy: "imagebuild " + o.pkg,
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = osName, arch
	cf.Created = v1.Time{Time: o.created}
	cf.Config.User = o.user
	cf.Config.Entrypoint = []string{"/" + o.name}
	cf.Config.Cmd = o.args
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = o.labels
	cf.Config.Env = envList(o.env)
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	return mutate.CreatedAt(img, v1.Time{Time: o.created})
}

func tarOf(files []file, mtime time.Time) ([]byte, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.path, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: mtime, Format: tar.FormatPAX,
			Typeflag: tar.TypeReg, Size: int64(len(f.data))}
		if f.data == nil {
			h.Typeflag, h.Name, h.Size = tar.TypeDir, f.path+"/", 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func runPush(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	var env listFlag
	layoutDir := fs.String("layout", "", "the OCI image layout that imagebuild build wrote")
	digestFile := fs.String("digest-file", "", "also write the pushed digest here")
	insecure := fs.Bool("insecure", false, "plain HTTP for every registry (loopback registries use it anyway)")
	fs.Var(&env, "env", "KEY=VALUE added to every image's environment before the push (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *layoutDir == "" || fs.NArg() == 0 {
		return errors.New("push needs --layout and at least one REF")
	}
	idx, err := readIndex(*layoutDir)
	if err != nil {
		return err
	}
	if len(env) > 0 {
		extra, err := pairs(env)
		if err != nil {
			return err
		}
		if idx, err = withEnv(idx, extra); err != nil {
			return err
		}
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	var nameOpts []name.Option
	if *insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	for _, r := range fs.Args() {
		ref, err := name.ParseReference(r, nameOpts...)
		if err != nil {
			return fmt.Errorf("reference %q: %w", r, err)
		}
		if err := remote.WriteIndex(ref, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("push %s: %w", ref, err)
		}
		fmt.Fprintf(stdout, "%s@%s\n", ref.Context(), digest)
	}
	if *digestFile != "" {
		if err := os.WriteFile(*digestFile, []byte(digest.String()+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func runDigest(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("digest", flag.ContinueOnError)
	layoutDir := fs.String("layout", "", "the OCI image layout that imagebuild build wrote")
	if err := fs.Parse(args); err != nil {
		return err
	}
	idx, err := readIndex(*layoutDir)
	if err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, digest)
	return nil
}

// readIndex returns the one image index a layout written by build holds.
func readIndex(dir string) (v1.ImageIndex, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read layout %s (run imagebuild build first): %w", dir, err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("layout %s holds %d manifests, want the one index imagebuild writes", dir, len(m.Manifests))
	}
	return top.ImageIndex(m.Manifests[0].Digest)
}

// withEnv rebuilds the index with extra environment variables in every image.
func withEnv(idx v1.ImageIndex, extra map[string]string) (v1.ImageIndex, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	out := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	if len(m.Annotations) > 0 {
		out = mutate.Annotations(out, m.Annotations).(v1.ImageIndex)
	}
	for _, d := range m.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cfg := cf.Config
		merged := map[string]string{}
		for _, kv := range cfg.Env {
			k, v, _ := strings.Cut(kv, "=")
			merged[k] = v
		}
		for k, v := range extra {
			merged[k] = v
		}
		cfg.Env = envList(merged)
		if img, err = mutate.Config(img, cfg); err != nil {
			return nil, err
		}
		out = mutate.AppendManifests(out, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: d.Platform}})
	}
	return out, nil
}

func pairs(list []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want KEY=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}

func envList(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	list := make([]string, 0, len(keys))
	for _, k := range keys {
		list = append(list, k+"="+env[k])
	}
	return list
}
