package webhook

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"k8s.io/klog/v2"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollout-guard/rollout-guard/config"
)

// Validator is the validating admission handler.
type Validator struct {
	decoder admission.Decoder
	skip    []string
	metrics *Metrics
}

// NewValidator builds the validating handler.
func NewValidator(decoder admission.Decoder, opts config.Options, metrics *Metrics) *Validator {
	return &Validator{decoder: decoder, skip: opts.SkippedNamespaces(), metrics: metrics}
}

const validatingName = "validating"

// Handle implements admission.Handler.
func (v *Validator) Handle(ctx context.Context, req admission.Request) (resp admission.Response) {
	start := time.Now()
	log := logf.FromContext(ctx).WithValues("uid", req.UID, "kind", req.Kind.Kind, "object", klog.KRef(req.Namespace, req.Name), "operation", req.Operation)
	defer func() {
		if p := recover(); p != nil {
			log.Error(fmt.Errorf("panic: %v", p), "Validating webhook panicked")
			resp = admission.Errored(http.StatusInternalServerError, fmt.Errorf("rollout-guard: internal error (request %s)", req.UID))
		}
		v.metrics.duration.WithLabelValues(validatingName).Observe(time.Since(start).Seconds())
		v.metrics.requests.WithLabelValues(validatingName, string(req.Operation), decision(resp)).Inc()
	}()
	if req.SubResource != "" || !handledOperation(req.Operation) || slices.Contains(v.skip, req.Namespace) {
		return admission.Allowed("")
	}
	if _, err := decodeWorkload(v.decoder, req.Kind, req.Object, "object"); err != nil {
		log.Error(err, "Cannot validate request")
		return errored(err)
	}
	return admission.Allowed("")
}
