package check

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/mutate"
	"github.com/rollout-guard/rollout-guard/policies"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// Document is one YAML document of an input, or one item of a List document.
type Document struct {
	File  string // path, or "-" for standard input
	Index int    // 1-based position in the file
	Line  int    // line of the file where the document starts
	Item  int    // 1-based position in a List document (what kubectl get -o yaml prints); 0 outside a List
	Data  []byte
	// NamespaceLabels are the labels of the workload's namespace when they are known (an audit of a live cluster);
	// nil offline, where a RolloutPolicy's namespaceSelector matches every namespace.
	NamespaceLabels map[string]string
}

// Finding is the verdict on one workload.
type Finding struct {
	File       string               `json:"file"`
	Document   int                  `json:"document"`
	Line       int                  `json:"line"`
	Item       int                  `json:"item,omitempty"`
	Kind       string               `json:"kind"`
	Namespace  string               `json:"namespace,omitempty"`
	Name       string               `json:"name"`
	Mutations  []string             `json:"mutations,omitempty"`
	Violations []policies.Violation `json:"violations,omitempty"`
	Warnings   []string             `json:"warnings,omitempty"`
}

// Where names the finding's place in its input: file (document N[, item M]).
func (f Finding) Where() string {
	return where(Document{File: f.File, Index: f.Document, Item: f.Item})
}

// Warned reports whether a policy warns about the workload.
func (f Finding) Warned() bool {
	return slices.ContainsFunc(f.Violations, func(v policies.Violation) bool { return v.Enforcement == policies.Warn })
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
	// ClientLive: objects read from a cluster (rollout-guard audit). They went through admission when they were
	// applied, so they are judged as they run, without mutation.
	ClientLive Client = "live"
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
	// Print receives the policies' print() output, when set (policy suites).
	Print func(policy, msg string)
}

// Checker judges manifests with a fixed configuration and policy set.
type Checker struct {
	client     Client
	exceptions []policies.Exception
	opts       config.Options
	eval       *policies.Evaluator
	selectors  map[string]labels.Selector // object selectors of RolloutPolicies
	namespaces map[string]labels.Selector // their namespace selectors, applied when a document knows its namespace's labels
	now        func() time.Time
}

// New compiles the built-in policies plus the setup's, for manifests applied by its client.
func New(ctx context.Context, opts config.Options, setup Setup) (*Checker, error) {
	if setup.Client != ClientApply && setup.Client != ClientCreate && setup.Client != ClientLive {
		return nil, fmt.Errorf("client %q: want %s or %s", setup.Client, ClientApply, ClientCreate)
	}
	all, err := policies.BuiltIns(opts.Policies.BuiltIns)
	if err != nil {
		return nil, err
	}
	c := &Checker{client: setup.Client, opts: opts, selectors: map[string]labels.Selector{}, namespaces: map[string]labels.Selector{}, now: time.Now}
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
		ns, obj, err := rp.Selectors()
		if err != nil {
			return nil, err
		}
		all = append(all, p)
		c.selectors[p.Name], c.namespaces[p.Name] = obj, ns
	}
	evalOpts := []policies.Option{policies.WithMemoryLimit(uint64(opts.Policies.EvaluationMemoryMiB) << 20)}
	if setup.Print != nil {
		evalOpts = append(evalOpts, policies.WithPrint(setup.Print))
	}
	if c.eval, err = policies.New(ctx, all, time.Duration(opts.Policies.EvaluationTimeoutMillis)*time.Millisecond, evalOpts...); err != nil {
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
	if err := unmarshal(doc.Data, &head, false); err != nil {
		return nil, fmt.Errorf("%s: %w", whereLine(doc), fileLines(doc, err))
	}
	var obj any
	switch {
	case removedAPIs[head.APIVersion] && workloadKinds[head.Kind]:
		// Skipping it would pass a manifest the cluster refuses.
		return nil, fmt.Errorf("%s: %s uses apiVersion %s, which Kubernetes removed in 1.16: use apiVersion: apps/v1, which also requires spec.selector (matching the template's labels)",
			whereLine(doc), head.Kind, head.APIVersion)
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
	if err := unmarshal(doc.Data, obj, true); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", whereLine(doc), head.Kind, fileLines(doc, err))
	}
	var manifest map[string]any
	if err := unmarshal(doc.Data, &manifest, false); err != nil {
		return nil, fmt.Errorf("%s: %w", whereLine(doc), fileLines(doc, err))
	}
	mutate.APIDefaults(obj)
	f := &Finding{File: doc.File, Document: doc.Index, Line: doc.Line, Item: doc.Item, Kind: head.Kind}
	meta := metaOf(obj)
	f.Name, f.Namespace = meta.name, meta.namespace
	if !mutate.OptedOut(meta.annotations) && c.client != ClientLive {
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
	// The object as the webhook's input has it: JSON's types (numbers are float64), as a YAML round trip would give,
	// at a fraction of its cost (an audit judges thousands).
	mutated, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var object map[string]any
	if err := json.Unmarshal(mutated, &object); err != nil {
		return nil, err
	}
	object["apiVersion"], object["kind"] = head.APIVersion, head.Kind
	violations, err := c.eval.Evaluate(ctx, map[string]any{"operation": "CREATE", "object": object}, head.Kind)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where(doc), err)
	}
	violations = slices.DeleteFunc(violations, func(v policies.Violation) bool {
		sel, custom := c.selectors[v.Policy]
		if doc.NamespaceLabels != nil && custom && !c.namespaces[v.Policy].Matches(labels.Set(doc.NamespaceLabels)) {
			return true
		}
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

// unmarshal decodes a document, YAML or JSON. JSON (what the audit reads from the API server, and `kubectl get -o
// json` prints) is decoded as JSON: a YAML parser reading it costs most of a workload's judgement. strict refuses
// unknown fields, as sigs.k8s.io/yaml's strict mode and kubectl's server-side field validation do.
func unmarshal(data []byte, v any, strict bool) error {
	if trimmed := bytes.TrimSpace(data); len(trimmed) == 0 || trimmed[0] != '{' {
		if strict {
			return yaml.UnmarshalStrict(data, v)
		}
		return yaml.Unmarshal(data, v)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if strict {
		dec.DisallowUnknownFields()
	}
	return dec.Decode(v)
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

// Workload kinds, and the API versions that served them before apps/v1 and were removed in Kubernetes 1.16.
var (
	workloadKinds = map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true}
	removedAPIs   = map[string]bool{"apps/v1beta1": true, "apps/v1beta2": true, "extensions/v1beta1": true}
)

func where(d Document) string {
	if d.Item > 0 {
		return fmt.Sprintf("%s (document %d, item %d)", d.File, d.Index, d.Item)
	}
	return fmt.Sprintf("%s (document %d)", d.File, d.Index)
}

// whereLine is where, with the line the document starts at, as editors and CI annotations name places.
func whereLine(d Document) string {
	if d.Line == 0 {
		return where(d)
	}
	return fmt.Sprintf("%s:%d%s", d.File, d.Line, strings.TrimPrefix(where(d), d.File))
}

// yamlLine is how YAML errors name a line: of the document, which the file's line replaces.
var yamlLine = regexp.MustCompile(`\bline (\d+)`)

// fileLines rewrites the document-relative line numbers of a YAML error into the file's.
func fileLines(d Document, err error) error {
	if d.Line == 0 || d.Item > 0 {
		return err
	}
	msg := yamlLine.ReplaceAllStringFunc(err.Error(), func(m string) string {
		n, convErr := strconv.Atoi(yamlLine.FindStringSubmatch(m)[1])
		if convErr != nil {
			return m
		}
		return fmt.Sprintf("line %d", d.Line+n-1)
	})
	return errors.New(msg)
}

// Read splits a file, every .yaml/.yml/.json file under a directory (nested ones too, in lexical order, hidden ones
// skipped), or standard input ("-") into documents, and List documents (kind: List, or a typed list such as
// DeploymentList) into their items. A directory holding a Helm chart (Chart.yaml) or a kustomization is rendered
// instead, with the default Render. It returns every document it could read and every error, joined.
func Read(path string, stdin io.Reader) ([]Document, error) {
	return Render{}.Read(path, stdin)
}

// Read is Read, rendering charts and kustomizations as r says.
func (r Render) Read(path string, stdin io.Reader) ([]Document, error) {
	if path == "-" {
		return splitAll("-", stdin)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	type input struct{ path, render string }
	inputs := []input{{path: path}}
	if info.IsDir() {
		inputs = nil
		err := filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case e.IsDir() && p != path && strings.HasPrefix(e.Name(), "."):
				return filepath.SkipDir // .git and the like
			case e.IsDir():
				// A chart's templates are not YAML until rendered, and a kustomization's files are its inputs.
				if kind := renderable(p); kind != "" {
					inputs = append(inputs, input{p, kind})
					return filepath.SkipDir
				}
				return nil
			}
			if ext := filepath.Ext(e.Name()); ext == ".yaml" || ext == ".yml" || ext == ".json" {
				inputs = append(inputs, input{path: p})
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(inputs) == 0 {
			return nil, fmt.Errorf("%s: no .yaml, .yml or .json files, Helm chart or kustomization", path)
		}
	}
	var docs []Document
	var errs []error
	for _, in := range inputs {
		if in.render != "" {
			d, err := r.renderDir(in.path, in.render)
			docs = append(docs, d...)
			errs = append(errs, err)
			continue
		}
		fh, err := os.Open(in.path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d, err := splitAll(in.path, fh)
		fh.Close()
		docs = append(docs, d...)
		errs = append(errs, err)
	}
	return docs, errors.Join(errs...)
}

// splitAll splits and expands Lists.
func splitAll(name string, r io.Reader) ([]Document, error) {
	docs, err := split(name, r)
	var out []Document
	errs := []error{err}
	for _, d := range docs {
		items, err := expandList(d)
		out = append(out, items...)
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// expandList returns the items of a List document, each a Document of its own, or the document itself.
func expandList(d Document) ([]Document, error) {
	var list struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := yaml.Unmarshal(d.Data, &list); err != nil || !strings.HasSuffix(list.Kind, "List") || list.Items == nil {
		return []Document{d}, nil // not a list; a document that does not parse is reported by Check
	}
	var out []Document
	for i, item := range list.Items {
		out = append(out, Document{File: d.File, Index: d.Index, Line: d.Line, Item: i + 1, Data: item})
	}
	return out, nil
}

// split cuts a stream into its YAML documents at "---" lines, keeping the line each starts at. A document that is
// only comments or blank is no document.
func split(name string, r io.Reader) ([]Document, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	var docs []Document
	var cur bytes.Buffer
	start, line := 1, 0
	flush := func() {
		if data := cur.Bytes(); len(bytes.TrimSpace(stripComments(data))) > 0 {
			docs = append(docs, Document{File: name, Index: len(docs) + 1, Line: start, Data: bytes.Clone(data)})
		}
		cur.Reset()
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "---" || strings.HasPrefix(text, "--- ") || strings.HasPrefix(text, "---\t") {
			flush()
			start = line + 1
			continue
		}
		if cur.Len() == 0 && strings.TrimSpace(text) == "" {
			start = line + 1 // a document starts at its first line with content
			continue
		}
		cur.WriteString(text)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return docs, fmt.Errorf("%s:%d: %w", name, line, err)
	}
	flush()
	return docs, nil
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
