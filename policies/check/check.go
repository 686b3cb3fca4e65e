package check

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/mutate"
	"github.com/rollout-guard/rollout-guard/policies"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// Document is one YAML document of an input.
type Document struct {
	File  string // path, or "-" for standard input
	Index int    // 1-based position in the file
	Data  []byte
}

// Finding is the verdict on one workload.
type Finding struct {
	File       string               `json:"file"`
	Document   int                  `json:"document"`
	Kind       string               `json:"kind"`
	Name       string               `json:"name"`
	Mutations  []string             `json:"mutations,omitempty"`
	Violations []policies.Violation `json:"violations,omitempty"`
	Warnings   []string             `json:"warnings,omitempty"`
}

// Denied reports whether the cluster would refuse the workload.
func (f Finding) Denied() bool {
	return slices.ContainsFunc(f.Violations, func(v policies.Violation) bool { return v.Enforcement == policies.Deny })
}

// Client is the kind of client a manifest is judged as applied by. The API server fills in its defaults before
// rollout-guard sees an object, so only a record of the author's intent tells "wrote 25%" from "wrote nothing".
type Client string

// Clients.
const (
	// ClientApply: kubectl apply (client- or server-side), Helm 4, Argo CD, Flux: they record what the author wrote.
	ClientApply Client = "apply"
	// ClientCreate: kubectl create and replace, Helm 3, client-go: no record, so a field equal to the API default
	// counts as unset and gets rollout-guard's default.
	ClientCreate Client = "create"
)

// Setup is what a Checker judges with besides the configuration.
type Setup struct {
	// Policies are RolloutPolicies in force besides the built-ins.
	Policies []*v1alpha1.RolloutPolicy
	// Exceptions are RolloutPolicyExceptions in force. One applies to a manifest of its namespace; a manifest or an
	// exception without a namespace is taken to be in the namespace the other will be applied to.
	Exceptions []*v1alpha1.RolloutPolicyException
	// Client is how the manifests reach the cluster.
	Client Client
}

// Checker judges manifests with a fixed configuration and policy set.
type Checker struct {
	client     Client
	exceptions []policies.Exception
	opts       config.Options
	eval       *policies.Evaluator
	selectors  map[string]labels.Selector // object selectors of RolloutPolicies
	now        func() time.Time
}

// New compiles the built-in policies plus the setup's, for manifests applied by its client.
func New(ctx context.Context, opts config.Options, setup Setup) (*Checker, error) {
	if setup.Client != ClientApply && setup.Client != ClientCreate {
		return nil, fmt.Errorf("client %q: want %s or %s", setup.Client, ClientApply, ClientCreate)
	}
	all, err := policies.BuiltIns(opts.Policies.BuiltIns)
	if err != nil {
		return nil, err
	}
	c := &Checker{client: setup.Client, opts: opts, selectors: map[string]labels.Selector{}, now: time.Now}
	for _, e := range setup.Exceptions {
		pe, err := e.ToException()
		if err != nil {
			return nil, err
		}
		c.exceptions = append(c.exceptions, pe)
	}
	for _, rp := range setup.Policies {
		p, err := rp.ToPolicy()
		if err != nil {
			return nil, err
		}
		// Namespace labels are not known offline: namespaceSelector matches every namespace here.
		_, obj, err := rp.Selectors()
		if err != nil {
			return nil, err
		}
		all = append(all, p)
		c.selectors[p.Name] = obj
	}
	if c.eval, err = policies.New(ctx, all, time.Duration(opts.Policies.EvaluationTimeoutMillis)*time.Millisecond); err != nil {
		return nil, err
	}
	return c, nil
}

// Check judges one document. It returns nil for documents that are not
// apps/v1 workloads, and an error for documents that cannot be read.
func (c *Checker) Check(ctx context.Context, doc Document) (*Finding, error) {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc.Data, &head); err != nil {
		return nil, fmt.Errorf("%s: %w", where(doc), err)
	}
	var obj any
	switch {
	case head.APIVersion != "apps/v1":
		return nil, nil
	case head.Kind == "Deployment":
		obj = &appsv1.Deployment{}
	case head.Kind == "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case head.Kind == "DaemonSet":
		obj = &appsv1.DaemonSet{}
	default:
		return nil, nil
	}
	// Strict, like kubectl's server-side field validation: a typo is an error, not a silent default.
	if err := yaml.UnmarshalStrict(doc.Data, obj); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", where(doc), head.Kind, err)
	}
	var manifest map[string]any
	if err := yaml.Unmarshal(doc.Data, &manifest); err != nil {
		return nil, fmt.Errorf("%s: %w", where(doc), err)
	}
	mutate.APIDefaults(obj)
	f := &Finding{File: doc.File, Document: doc.Index, Kind: head.Kind}
	meta := metaOf(obj)
	f.Name = meta.name
	if !mutate.OptedOut(meta.annotations) {
		var ns *mutate.Overrides
		if o, ok := c.opts.Mutation.Namespaces[meta.namespace]; ok {
			ns = &o
		}
		defaults, notes := mutate.Resolve(c.opts.Mutation.Defaults, ns, nil, meta.annotations)
		in := mutate.Input{Defaults: defaults}
		var pristine any
		if c.client == ClientApply {
			in.Intent = mutate.IntentFromManifest(manifest)
			pristine = obj.(runtime.Object).DeepCopyObject()
		}
		r := mutate.Workload(obj, in)
		for _, ch := range r.Changes {
			f.Mutations = append(f.Mutations, strings.TrimPrefix(ch.Message, "rollout-guard: "))
		}
		if pristine != nil {
			// Never claim parity that does not hold: name what a client without a record of intent would get.
			for _, ch := range mutate.Workload(pristine, mutate.Input{Defaults: defaults}).Changes {
				if !slices.ContainsFunc(r.Changes, func(done mutate.Change) bool { return done.Path == ch.Path }) {
					f.Warnings = append(f.Warnings, fmt.Sprintf("%s is kept as written for kubectl apply, Helm 4 and GitOps tools; "+
						"a client that records no intent (kubectl create or replace, Helm 3, client-go) gets %s (check --client create)",
						ch.Path, strings.TrimPrefix(ch.Message, "rollout-guard: ")))
				}
			}
		}
		f.Warnings = append(f.Warnings, append(notes, r.Notes...)...)
	}
	mutated, err := yaml.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var object map[string]any
	if err := yaml.Unmarshal(mutated, &object); err != nil {
		return nil, err
	}
	object["apiVersion"], object["kind"] = head.APIVersion, head.Kind
	violations, err := c.eval.Evaluate(ctx, map[string]any{"operation": "CREATE", "object": object}, head.Kind)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where(doc), err)
	}
	violations = slices.DeleteFunc(violations, func(v policies.Violation) bool {
		sel, custom := c.selectors[v.Policy]
		return custom && !sel.Matches(labels.Set(meta.labels))
	})
	var inForce []policies.Exception
	for _, e := range c.exceptions {
		if e.Namespace == "" || meta.namespace == "" || e.Namespace == meta.namespace {
			inForce = append(inForce, e)
		}
	}
	workload := policies.Workload{Kind: head.Kind, Name: meta.name, Labels: meta.labels}
	violations, warnings, _ := policies.ApplyExceptions(violations, inForce, workload, c.now(), c.opts.Policies.MaxExceptionDuration.Duration)
	f.Warnings = append(f.Warnings, warnings...)
	kept, warnings, _ := policies.ApplyExemptions(violations, meta.annotations, c.now(), c.opts.Policies.AnnotationExemptions)
	f.Warnings = append(f.Warnings, warnings...)
	for _, v := range kept {
		if v.Enforcement != policies.DryRun {
			f.Violations = append(f.Violations, v)
		}
	}
	return f, nil
}

type objectMeta struct {
	name, namespace     string
	labels, annotations map[string]string
}

func metaOf(obj any) objectMeta {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return objectMeta{o.Name, o.Namespace, o.Labels, o.Annotations}
	case *appsv1.StatefulSet:
		return objectMeta{o.Name, o.Namespace, o.Labels, o.Annotations}
	case *appsv1.DaemonSet:
		return objectMeta{o.Name, o.Namespace, o.Labels, o.Annotations}
	}
	return objectMeta{}
}

func where(d Document) string { return fmt.Sprintf("%s (document %d)", d.File, d.Index) }

// Read splits a file, every .yaml/.yml/.json file of a directory, or
// standard input ("-") into documents.
func Read(path string, stdin io.Reader) ([]Document, error) {
	if path == "-" {
		return split("-", stdin)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := []string{path}
	if info.IsDir() {
		files = nil
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml" || ext == ".json") {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%s: no .yaml, .yml or .json files", path)
		}
	}
	var docs []Document
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		d, err := split(f, fh)
		fh.Close()
		if err != nil {
			return nil, err
		}
		docs = append(docs, d...)
	}
	return docs, nil
}

func split(name string, r io.Reader) ([]Document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs []Document
	for i := 1; ; i++ {
		data, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s (document %d): %w", name, i, err)
		}
		if len(bytes.TrimSpace(stripComments(data))) == 0 {
			i--
			continue
		}
		docs = append(docs, Document{File: name, Index: i, Data: data})
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
		}
	}
	return out
}

// ReadPolicies reads RolloutPolicy manifests from a file or directory.
func ReadPolicies(path string) ([]*v1alpha1.RolloutPolicy, error) {
	return readKind[v1alpha1.RolloutPolicy](path, "RolloutPolicy")
}

// ReadExceptions reads RolloutPolicyException manifests from a file or directory.
func ReadExceptions(path string) ([]*v1alpha1.RolloutPolicyException, error) {
	return readKind[v1alpha1.RolloutPolicyException](path, "RolloutPolicyException")
}

// readKind reads every document of path, strictly, as an object of kind.
func readKind[T any, P interface {
	*T
	GetObjectKind() schema.ObjectKind
}](path, kind string) ([]P, error) {
	docs, err := Read(path, nil)
	if err != nil {
		return nil, err
	}
	var out []P
	for _, d := range docs {
		obj := P(new(T))
		if err := yaml.UnmarshalStrict(d.Data, obj); err != nil {
			return nil, fmt.Errorf("%s: %w", where(d), err)
		}
		if got := obj.GetObjectKind().GroupVersionKind().Kind; got != kind {
			return nil, fmt.Errorf("%s: kind %q, want %s", where(d), got, kind)
		}
		out = append(out, obj)
	}
	return out, nil
}
