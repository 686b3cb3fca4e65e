package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

// managedBy labels the reports rollout-guard writes, so that it finds and removes only its own.
const managedBy = "app.kubernetes.io/managed-by"

// debounce lets the changes of one `kubectl apply -f policies/` arrive before the audit they start.
const debounce = 2 * time.Second

var reportGVK = schema.GroupVersionKind{Group: ReportGroup, Version: ReportVersion, Kind: ReportKind}

// Auditor audits the running workloads every interval and whenever a RolloutPolicy or RolloutPolicyException
// changes, and writes the results as PolicyReports. It runs on the leader only.
type Auditor struct {
	reader  client.Reader // the API server itself: workloads are read page by page, not held in an informer cache
	writer  client.Client
	opts    config.Options
	metrics *Metrics
	trigger chan struct{}
	now     func() time.Time
	// crdMissing: the PolicyReport CRD was missing at the last audit, said once rather than at every audit.
	crdMissing bool
}

// NewAuditor builds the auditor.
func NewAuditor(reader client.Reader, writer client.Client, opts config.Options, metrics *Metrics, now func() time.Time) *Auditor {
	return &Auditor{reader: reader, writer: writer, opts: opts, metrics: metrics, trigger: make(chan struct{}, 1), now: now}
}

// Setup adds an Auditor to mgr, started by changes of RolloutPolicies and RolloutPolicyExceptions.
func Setup(ctx context.Context, mgr manager.Manager, opts config.Options, metrics *Metrics) error {
	// Protobuf where the API server speaks it (the workloads; PolicyReports stay JSON): cheaper to encode for the
	// API server and to decode here, for the thousands of objects an audit reads.
	cfg := rest.CopyConfig(mgr.GetConfig())
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	reader, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(), HTTPClient: mgr.GetHTTPClient()})
	if err != nil {
		return fmt.Errorf("a client for the audit: %w", err)
	}
	a := NewAuditor(reader, mgr.GetClient(), opts, metrics, time.Now)
	for _, obj := range []client.Object{&v1alpha1.RolloutPolicy{}, &v1alpha1.RolloutPolicyException{}} {
		inf, err := mgr.GetCache().GetInformer(ctx, obj)
		if err != nil {
			return fmt.Errorf("watch %T for the audit: %w", obj, err)
		}
		// Only a change of what is in force starts an audit: the webhook writes the status of an exception at
		// every use, which would otherwise audit the cluster at every admission the exception waives.
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: func(any) { a.Trigger() },
			UpdateFunc: func(old, cur any) {
				o, ok1 := old.(client.Object)
				c, ok2 := cur.(client.Object)
				if !ok1 || !ok2 || o.GetGeneration() != c.GetGeneration() {
					a.Trigger()
				}
			},
			DeleteFunc: func(any) { a.Trigger() },
		}); err != nil {
			return fmt.Errorf("watch %T for the audit: %w", obj, err)
		}
	}
	return mgr.Add(a)
}

// Trigger asks for an audit soon; triggers that arrive while one is pending are one.
func (a *Auditor) Trigger() {
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// NeedLeaderElection: one writer of the reports.
func (a *Auditor) NeedLeaderElection() bool { return true }

// firstAudit is how long a new leader waits before its first audit: it is busy enough reconciling every workload
// for the first time.
const firstAudit = 30 * time.Second

// Start audits soon after it starts, then every interval and after each trigger, until ctx is cancelled.
func (a *Auditor) Start(ctx context.Context) error {
	ctx = logf.IntoContext(ctx, logf.FromContext(ctx).WithName("audit"))
	timer := time.NewTimer(min(firstAudit, a.opts.Audit.Interval.Duration))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-a.trigger:
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(debounce):
			}
		}
		if err := a.Once(ctx); err != nil {
			logf.FromContext(ctx).Error(err, "Audit failed")
		}
		timer.Reset(a.opts.Audit.Interval.Duration)
	}
}

// Once audits the cluster and writes the reports.
func (a *Auditor) Once(ctx context.Context) error {
	log := logf.FromContext(ctx)
	start := a.now()
	// Bounds an audit stuck on the API server; paced, a large cluster's audit takes a while, whatever the interval.
	ctx, cancel := context.WithTimeout(ctx, max(a.opts.Audit.Interval.Duration, 10*time.Minute))
	defer cancel()
	err := a.once(ctx, start)
	result := "success"
	if err != nil {
		result = "error"
	}
	a.metrics.runs.WithLabelValues(result).Inc()
	a.metrics.duration.Set(a.now().Sub(start).Seconds())
	if err == nil {
		a.metrics.lastSuccess.Set(float64(a.now().Unix()))
		log.V(1).Info("Audit done", "duration", a.now().Sub(start))
	}
	return err
}

func (a *Auditor) once(ctx context.Context, start time.Time) error {
	log := logf.FromContext(ctx)
	// At most half a core, and room for the API server between pages: admission shares both.
	res, err := Run(ctx, a.reader, a.opts, "", Pace{Rest: 1})
	if err != nil {
		return err
	}
	for _, e := range res.Errors {
		log.Error(e, "Left out of the audit")
	}
	// Metrics first: they do not need the PolicyReport CRD.
	a.metrics.workloads.Set(float64(len(res.Findings)))
	a.metrics.results.set(Series(res, maxResultSeries))
	previous, objects, err := a.readReports(ctx)
	if meta.IsNoMatchError(err) {
		if !a.crdMissing {
			log.Error(err, "The PolicyReport CRD (wgpolicyk8s.io/v1alpha2) is not installed: the audit keeps its metrics but writes no reports; install it (the chart's audit.installPolicyReportCRD) or set audit.enabled false")
		}
		a.crdMissing = true
		return fmt.Errorf("write PolicyReports: %w", err)
	}
	a.crdMissing = false
	if err != nil {
		return err
	}
	var errs []error
	for ns, r := range Build(res, previous, start, a.opts.Audit.MaxResultsPerReport) {
		if p, ok := previous[ns]; ok && Same(p, r) {
			continue
		}
		if err := a.write(ctx, r, objects[ns]); err != nil {
			errs = append(errs, fmt.Errorf("write the PolicyReport of namespace %s: %w", ns, err))
		}
	}
	for ns, obj := range objects {
		if _, ok := res.Workloads[ns]; !ok {
			// No workload audited there any more (all deleted, or the namespace is now skipped): nothing to report.
			if err := a.writer.Delete(ctx, obj); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete the PolicyReport of namespace %s: %w", ns, err))
			}
		}
	}
	return errors.Join(errs...)
}

// readReports lists the reports rollout-guard wrote, decoded and as objects (for their resourceVersions).
func (a *Auditor) readReports(ctx context.Context) (map[string]Report, map[string]*unstructured.Unstructured, error) {
	reports, objects := map[string]Report{}, map[string]*unstructured.Unstructured{}
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(reportGVK.GroupVersion().WithKind(ReportKind + "List"))
	for cont := ""; ; {
		if err := a.reader.List(ctx, list, client.MatchingLabels{managedBy: Source}, client.Limit(listPage), client.Continue(cont)); err != nil {
			return nil, nil, err
		}
		for i := range list.Items {
			obj := &list.Items[i]
			if obj.GetName() != ReportName {
				continue
			}
			r, err := decodeReport(obj)
			if err != nil {
				// Rewritten whole below, as if it were not there.
				logf.FromContext(ctx).Error(err, "Unreadable PolicyReport", "report", client.ObjectKeyFromObject(obj))
			}
			reports[obj.GetNamespace()], objects[obj.GetNamespace()] = r, obj
		}
		if cont = list.GetContinue(); cont == "" {
			return reports, objects, nil
		}
	}
}

func decodeReport(obj *unstructured.Unstructured) (Report, error) {
	r := Report{Namespace: obj.GetNamespace()}
	data, err := json.Marshal(obj.Object)
	if err == nil {
		err = json.Unmarshal(data, &r)
	}
	if n := obj.GetAnnotations()[OmittedAnnotation]; n != "" {
		r.Omitted, _ = strconv.Atoi(n)
	}
	return r, err
}

// write creates the namespace's report or updates it in place.
func (a *Auditor) write(ctx context.Context, r Report, existing *unstructured.Unstructured) error {
	obj := &unstructured.Unstructured{Object: map[string]any{}}
	if existing != nil {
		obj = existing.DeepCopy()
	}
	obj.SetGroupVersionKind(reportGVK)
	obj.SetNamespace(r.Namespace)
	obj.SetName(ReportName)
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[managedBy] = Source
	obj.SetLabels(labels)
	annotations := obj.GetAnnotations()
	delete(annotations, OmittedAnnotation)
	if r.Omitted > 0 {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[OmittedAnnotation] = strconv.Itoa(r.Omitted)
	}
	obj.SetAnnotations(annotations)
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	var content map[string]any
	if err := json.Unmarshal(data, &content); err != nil {
		return err
	}
	obj.Object["summary"], obj.Object["results"] = content["summary"], content["results"]
	if existing == nil {
		return a.writer.Create(ctx, obj)
	}
	return a.writer.Update(ctx, obj)
}
