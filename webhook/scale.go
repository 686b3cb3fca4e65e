package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/rollout-guard/rollout-guard/policies"
)

// validateScale judges a scale as the update of the workload it makes: the live workload with the requested replicas,
// against the same workload as it is. People are denied a scale into a violation. Automation (a ServiceAccount: the
// HorizontalPodAutoscaler, KEDA, a pipeline) is only warned: a refused scale-up under load can take a service down,
// which is worse than the rollout risk the policy guards against.
func (v *Validator) validateScale(ctx context.Context, log logr.Logger, req admission.Request) admission.Response {
	var scale autoscalingv1.Scale
	if err := json.Unmarshal(req.Object.Raw, &scale); err != nil {
		return errored(&requestError{code: http.StatusBadRequest, msg: fmt.Sprintf("decode Scale: %v", err)})
	}
	if v.live == nil {
		return admission.Allowed("")
	}
	var workload client.Object
	kind := ""
	switch req.Resource.Resource {
	case "deployments":
		workload, kind = &appsv1.Deployment{}, "Deployment"
	case "statefulsets":
		workload, kind = &appsv1.StatefulSet{}, "StatefulSet"
	default:
		return admission.Allowed("")
	}
	readCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := v.live.Get(readCtx, client.ObjectKey{Namespace: req.Namespace, Name: req.Name}, workload); err != nil {
		// never block a scale on our own trouble: say so and let it through
		log.Error(err, "Cannot read the workload a scale changes", "namespace", req.Namespace, "name", req.Name)
		return admission.Allowed("").WithWarnings(fmt.Sprintf("rollout-guard: could not read %s %s/%s to check this scale: %v", kind, req.Namespace, req.Name, err))
	}
	// policies read the object as the API server sends it, kind included
	workload.GetObjectKind().SetGroupVersionKind(appsv1.SchemeGroupVersion.WithKind(kind))
	old, err := json.Marshal(workload)
	if err != nil {
		return errored(err)
	}
	switch w := workload.(type) {
	case *appsv1.Deployment:
		w.Spec.Replicas = &scale.Spec.Replicas
	case *appsv1.StatefulSet:
		w.Spec.Replicas = &scale.Spec.Replicas
	}
	scaled, err := json.Marshal(workload)
	if err != nil {
		return errored(err)
	}
	as := req
	as.SubResource = ""
	as.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: kind}
	as.Object, as.OldObject = runtime.RawExtension{Raw: scaled}, runtime.RawExtension{Raw: old}
	resp := v.handle(ctx, log, as)
	if resp.Allowed || resp.Result == nil || resp.Result.Code != http.StatusForbidden {
		return resp
	}
	what := fmt.Sprintf("scaling %s %s/%s to %d replicas: ", kind, req.Namespace, req.Name, scale.Spec.Replicas)
	if strings.HasPrefix(req.UserInfo.Username, "system:serviceaccount:") {
		log.Info("Scale into a policy violation admitted for automation", "user", req.UserInfo.Username, "replicas", scale.Spec.Replicas)
		return admission.Allowed("").WithWarnings(limitWarnings(append(resp.Warnings,
			"rollout-guard: "+what+"allowed for automation, but for a person it would be denied: "+resp.Result.Message))...)
	}
	return admission.Denied(policies.Truncate(what+resp.Result.Message, policies.MaxMessageBytes)).WithWarnings(resp.Warnings...)
}
