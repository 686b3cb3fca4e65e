package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/rollout-guard/rollout-guard/mutate"
	"github.com/rollout-guard/rollout-guard/policies"
)

// Options configure every rollout-guard subcommand.
type Options struct {
	// Kubeconfig is the path of a kubeconfig; empty means in-cluster or $KUBECONFIG.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// KubeAPIQPS and KubeAPIBurst limit requests to the API server. client-go's
	// own default (5 QPS) would make marking thousands of ReplicaSets take minutes.
	KubeAPIQPS   float32 `json:"kubeAPIQPS"`
	KubeAPIBurst int     `json:"kubeAPIBurst"`
	// Namespace is the namespace rollout-guard runs in. It is never mutated or
	// validated, and holds the leader election lease.
	Namespace string          `json:"namespace"`
	Webhook   Webhook         `json:"webhook"`
	Watcher   Watcher         `json:"watcher"`
	Mutation  Mutation        `json:"mutation"`
	Policies  policies.Config `json:"policies"`
	Rollback  Rollback        `json:"rollback"`
	Analysis  Analysis        `json:"analysis"`
	Audit     Audit           `json:"audit"`
	Dev       Dev             `json:"dev"`
}

// Webhook configures the admission server.
type Webhook struct {
	// Host and Port are where admission requests are served over TLS.
	Host string `json:"host"`
	Port int    `json:"port"`
	// CertDir holds tls.crt and tls.key; they are reloaded when they change.
	CertDir     string `json:"certDir"`
	MetricsAddr string `json:"metricsAddr"`
	HealthAddr  string `json:"healthAddr"`
	// SelfManagedCerts: rollout-guard makes and rotates its own CA and
	// serving certificate, when cert-manager is not used.
	SelfManagedCerts SelfManagedCerts `json:"selfManagedCerts"`
}

// SelfManagedCerts configures certificates rollout-guard manages itself: kept
// in a Secret of its namespace, written to CertDir, their CA published in the
// caBundle of the webhook configurations named ConfigurationName.
type SelfManagedCerts struct {
	Enabled           bool            `json:"enabled"`
	SecretName        string          `json:"secretName"`
	Hosts             []string        `json:"hosts,omitempty"`
	ConfigurationName string          `json:"configurationName"`
	Validity          metav1.Duration `json:"validity"`
	RenewBefore       metav1.Duration `json:"renewBefore"`
}

// Watcher configures the rollback watcher's manager.
type Watcher struct {
	MetricsAddr string `json:"metricsAddr"`
	HealthAddr  string `json:"healthAddr"`
	// PprofAddr serves net/http/pprof, for profiling memory at scale; 0 (the default) disables it.
	PprofAddr        string `json:"pprofAddr"`
	LeaderElection   bool   `json:"leaderElection"`
	LeaderElectionID string `json:"leaderElectionID"`
}

// Mutation configures the mutating webhook.
type Mutation struct {
	// SkipNamespaces are never mutated (rollout-guard's own namespace is added).
	SkipNamespaces []string        `json:"skipNamespaces"`
	Defaults       mutate.Defaults `json:"defaults"`
	// Namespaces override some defaults per namespace.
	Namespaces map[string]mutate.Overrides `json:"namespaces,omitempty"`
}

// Rollback configures stall detection and automatic undo.
type Rollback struct {
	// Mode is enforce (roll back) or dryrun (only report what would be done).
	Mode string `json:"mode"`
	// ImagePullGracePeriod is how long pods of a new ReplicaSet may wait on
	// an image before the rollout counts as stalled.
	ImagePullGracePeriod metav1.Duration `json:"imagePullGracePeriod"`
	// CrashLoopRestarts is how many restarts in CrashLoopBackOff make a stall.
	CrashLoopRestarts int32 `json:"crashLoopRestarts"`
	// CircuitBreaker stops automatic rollbacks when many Deployments stall at
	// once: that is a cluster problem, not a bad release.
	CircuitBreaker CircuitBreaker `json:"circuitBreaker"`
	// Workers is how many workloads of each kind the watcher reconciles at once.
	Workers int `json:"workers"`
	// Selector limits the watcher to workloads whose labels match (label
	// selector syntax, e.g. "tier!=experimental"); empty means all.
	Selector string `json:"selector,omitempty"`
}

// CircuitBreaker pauses rollbacks in a namespace when more than MaxStalls of its workloads stall within Window, and
// in the whole cluster when more than MaxStalls stall within Window across at least MinNamespaces namespaces.
type CircuitBreaker struct {
	MaxStalls     int             `json:"maxStalls"`
	MinNamespaces int             `json:"minNamespaces"`
	Window        metav1.Duration `json:"window"`
}

// Analysis configures how the watcher reaches Prometheus to run RolloutAnalyses.
type Analysis struct {
	Prometheus Prometheus `json:"prometheus"`
}

// Audit configures the watcher's audit of running workloads: the policies in force, run on every Deployment,
// StatefulSet and DaemonSet, with the results written as one wgpolicyk8s.io PolicyReport per namespace.
type Audit struct {
	Enabled bool `json:"enabled"`
	// Interval between audits; a change of RolloutPolicies or RolloutPolicyExceptions starts one at once.
	Interval metav1.Duration `json:"interval"`
	// MaxResultsPerReport bounds one namespace's report (etcd keeps objects below 1.5 MiB); the summary still
	// counts every result.
	MaxResultsPerReport int `json:"maxResultsPerReport"`
}

// Prometheus is the Prometheus HTTP API the watcher queries. Credentials are read from files (mounted Secrets) at
// every query, so that a rotated Secret needs no restart.
type Prometheus struct {
	// Address is the API's base URL, e.g. http://prometheus-operated.monitoring:9090; empty: every analysis that
	// applies is inconclusive, and holds its revisions back from known-good.
	Address string `json:"address,omitempty"`
	// Timeout bounds one query.
	Timeout            metav1.Duration `json:"timeout"`
	InsecureSkipVerify bool            `json:"insecureSkipVerify,omitempty"`
	// CAFile verifies Prometheus' serving certificate (PEM), in addition to the system's roots.
	CAFile string `json:"caFile,omitempty"`
	// BearerTokenFile, or UsernameFile with PasswordFile, authenticate the watcher.
	BearerTokenFile string `json:"bearerTokenFile,omitempty"`
	UsernameFile    string `json:"usernameFile,omitempty"`
	PasswordFile    string `json:"passwordFile,omitempty"`
}

// Dev configures development mode: self-signed certificates for 127.0.0.1
// and webhook configurations registered with a URL, for a local cluster.
type Dev struct {
	Enabled bool `json:"enabled"`
	// FailurePolicy of the registered webhook configurations: Ignore or Fail.
	FailurePolicy string `json:"failurePolicy"`
}

// Rollback modes.
const (
	ModeEnforce = "enforce"
	ModeDryRun  = "dryrun"
)

// Default returns the built-in Options.
func Default() Options {
	return Options{
		Namespace:    "rollout-guard",
		KubeAPIQPS:   50,
		KubeAPIBurst: 100,
		Webhook: Webhook{
			Port: 9443, CertDir: "/tmp/rollout-guard/certs",
			MetricsAddr: ":8080", HealthAddr: ":8081",
			SelfManagedCerts: SelfManagedCerts{
				SecretName: "rollout-guard-webhook-tls", ConfigurationName: "rollout-guard",
				Validity: metav1.Duration{Duration: 365 * 24 * time.Hour}, RenewBefore: metav1.Duration{Duration: 30 * 24 * time.Hour},
			},
		},
		Watcher: Watcher{
			MetricsAddr: ":8080", HealthAddr: ":8081", PprofAddr: "0",
			LeaderElection: true, LeaderElectionID: "rollout-guard-watcher",
		},
		Mutation: Mutation{
			SkipNamespaces: []string{"kube-system", "kube-public", "kube-node-lease"},
			Defaults:       mutate.DefaultDefaults(),
		},
		Policies: policies.DefaultConfig(),
		Rollback: Rollback{
			Mode:                 ModeEnforce,
			ImagePullGracePeriod: metav1.Duration{Duration: 60 * time.Second},
			CrashLoopRestarts:    3,
			Workers:              4,
			CircuitBreaker:       CircuitBreaker{MaxStalls: 5, MinNamespaces: 3, Window: metav1.Duration{Duration: 5 * time.Minute}},
		},
		Analysis: Analysis{Prometheus: Prometheus{Timeout: metav1.Duration{Duration: 10 * time.Second}}},
		Audit:    Audit{Enabled: true, Interval: metav1.Duration{Duration: 10 * time.Minute}, MaxResultsPerReport: 1000},
		Dev:      Dev{FailurePolicy: "Ignore"},
	}
}

// LoadFile overlays the YAML file at path onto o. Fields the file does not
// mention keep their value; fields rollout-guard does not know are an error.
func (o *Options) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	// Strict decoding reports every unknown or duplicate field with its path at once.
	strictErrs, err := kjson.UnmarshalStrict(js, o, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return fmt.Errorf("config file %s: %s", path, strings.Join(msgs, "; "))
	}
	return nil
}

// Validate reports every invalid field, each with its path.
func (o Options) Validate() error {
	var errs field.ErrorList
	if o.Namespace == "" {
		errs = append(errs, field.Required(field.NewPath("namespace"), "rollout-guard's own namespace"))
	}
	if o.KubeAPIQPS <= 0 || o.KubeAPIBurst < 1 {
		errs = append(errs, field.Invalid(field.NewPath("kubeAPIQPS"), o.KubeAPIQPS, "kubeAPIQPS and kubeAPIBurst must be positive"))
	}
	w := field.NewPath("webhook")
	if o.Webhook.Port < 1 || o.Webhook.Port > 65535 {
		errs = append(errs, field.Invalid(w.Child("port"), o.Webhook.Port, "must be between 1 and 65535"))
	}
	if o.Webhook.CertDir == "" {
		errs = append(errs, field.Required(w.Child("certDir"), "the directory holding tls.crt and tls.key"))
	}
	errs = append(errs, validAddr(w.Child("metricsAddr"), o.Webhook.MetricsAddr)...)
	errs = append(errs, validAddr(w.Child("healthAddr"), o.Webhook.HealthAddr)...)
	if sm := o.Webhook.SelfManagedCerts; sm.Enabled {
		sp := w.Child("selfManagedCerts")
		if sm.SecretName == "" {
			errs = append(errs, field.Required(sp.Child("secretName"), "the Secret that keeps the certificates"))
		}
		if len(sm.Hosts) == 0 {
			errs = append(errs, field.Required(sp.Child("hosts"), "the DNS names or IPs the API server calls the webhook at"))
		}
		if sm.ConfigurationName == "" {
			errs = append(errs, field.Required(sp.Child("configurationName"), "the webhook configurations whose caBundle to keep current"))
		}
		if sm.RenewBefore.Duration <= 0 || sm.RenewBefore.Duration >= sm.Validity.Duration {
			errs = append(errs, field.Invalid(sp.Child("renewBefore"), sm.RenewBefore.Duration.String(), "must be positive and shorter than validity"))
		}
		if o.Dev.Enabled {
			errs = append(errs, field.Invalid(sp.Child("enabled"), true, "cannot be combined with dev mode, which makes its own certificates"))
		}
	}
	wa := field.NewPath("watcher")
	errs = append(errs, validAddr(wa.Child("metricsAddr"), o.Watcher.MetricsAddr)...)
	errs = append(errs, validAddr(wa.Child("healthAddr"), o.Watcher.HealthAddr)...)
	errs = append(errs, validAddr(wa.Child("pprofAddr"), o.Watcher.PprofAddr)...)
	if o.Watcher.LeaderElection && o.Watcher.LeaderElectionID == "" {
		errs = append(errs, field.Required(wa.Child("leaderElectionID"), "needed when leaderElection is true"))
	}
	m := field.NewPath("mutation")
	errs = append(errs, o.Mutation.Defaults.Validate(m.Child("defaults"))...)
	for ns, ov := range o.Mutation.Namespaces {
		errs = append(errs, ov.Apply(o.Mutation.Defaults).Validate(m.Child("namespaces").Key(ns))...)
	}
	errs = append(errs, o.Policies.Validate(field.NewPath("policies"))...)
	r := field.NewPath("rollback")
	if !slices.Contains([]string{ModeEnforce, ModeDryRun}, o.Rollback.Mode) {
		errs = append(errs, field.NotSupported(r.Child("mode"), o.Rollback.Mode, []string{ModeEnforce, ModeDryRun}))
	}
	if o.Rollback.ImagePullGracePeriod.Duration <= 0 {
		errs = append(errs, field.Invalid(r.Child("imagePullGracePeriod"), o.Rollback.ImagePullGracePeriod.Duration.String(), "must be positive"))
	}
	if o.Rollback.Workers < 1 || o.Rollback.Workers > 64 {
		errs = append(errs, field.Invalid(r.Child("workers"), o.Rollback.Workers, "must be between 1 and 64"))
	}
	if o.Rollback.CrashLoopRestarts < 1 {
		errs = append(errs, field.Invalid(r.Child("crashLoopRestarts"), o.Rollback.CrashLoopRestarts, "must be at least 1"))
	}
	cb := r.Child("circuitBreaker")
	if o.Rollback.CircuitBreaker.MaxStalls < 1 {
		errs = append(errs, field.Invalid(cb.Child("maxStalls"), o.Rollback.CircuitBreaker.MaxStalls, "must be at least 1"))
	}
	if o.Rollback.CircuitBreaker.MinNamespaces < 1 {
		errs = append(errs, field.Invalid(cb.Child("minNamespaces"), o.Rollback.CircuitBreaker.MinNamespaces, "must be at least 1"))
	}
	if o.Rollback.CircuitBreaker.Window.Duration <= 0 {
		errs = append(errs, field.Invalid(cb.Child("window"), o.Rollback.CircuitBreaker.Window.Duration.String(), "must be positive"))
	}
	if _, err := labels.Parse(o.Rollback.Selector); err != nil {
		errs = append(errs, field.Invalid(r.Child("selector"), o.Rollback.Selector, err.Error()))
	}
	errs = append(errs, o.Analysis.Prometheus.validate(field.NewPath("analysis", "prometheus"))...)
	if o.Audit.Interval.Duration < 10*time.Second {
		errs = append(errs, field.Invalid(field.NewPath("audit", "interval"), o.Audit.Interval.Duration.String(), "must be at least 10s"))
	}
	if o.Audit.MaxResultsPerReport < 1 || o.Audit.MaxResultsPerReport > 5000 {
		errs = append(errs, field.Invalid(field.NewPath("audit", "maxResultsPerReport"), o.Audit.MaxResultsPerReport,
			"must be between 1 and 5000 (a report must stay well below etcd's 1.5 MiB object limit)"))
	}
	if !slices.Contains([]string{"Ignore", "Fail"}, o.Dev.FailurePolicy) {
		errs = append(errs, field.NotSupported(field.NewPath("dev", "failurePolicy"), o.Dev.FailurePolicy, []string{"Ignore", "Fail"}))
	}
	return errs.ToAggregate()
}

func (p Prometheus) validate(path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if p.Address != "" {
		u, err := url.Parse(p.Address)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, field.Invalid(path.Child("address"), p.Address, "must be an http:// or https:// URL with a host, e.g. http://prometheus-operated.monitoring:9090"))
		}
	}
	if p.Timeout.Duration <= 0 {
		errs = append(errs, field.Invalid(path.Child("timeout"), p.Timeout.Duration.String(), "must be positive"))
	}
	if (p.UsernameFile == "") != (p.PasswordFile == "") {
		errs = append(errs, field.Invalid(path.Child("usernameFile"), p.UsernameFile, "usernameFile and passwordFile go together"))
	}
	if p.BearerTokenFile != "" && p.UsernameFile != "" {
		errs = append(errs, field.Invalid(path.Child("bearerTokenFile"), p.BearerTokenFile, "use a bearer token or basic auth, not both"))
	}
	return errs
}

// validAddr accepts host:port, :port, or "0" (disabled), as controller-runtime does.
func validAddr(path *field.Path, addr string) field.ErrorList {
	if addr == "0" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		var n int
		if n, err = strconv.Atoi(port); err == nil && (n < 0 || n > 65535) {
			err = fmt.Errorf("port out of range")
		}
	}
	if err != nil {
		return field.ErrorList{field.Invalid(path, addr, "must be host:port, :port, or 0 to disable")}
	}
	return nil
}

// SkippedNamespaces are the namespaces the webhooks leave alone: the
// configured ones plus rollout-guard's own.
func (o Options) SkippedNamespaces() []string {
	out := slices.Clone(o.Mutation.SkipNamespaces)
	if !slices.Contains(out, o.Namespace) {
		out = append(out, o.Namespace)
	}
	return out
}
