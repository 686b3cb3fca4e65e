package webhook

import (
	"fmt"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"
)

// workloadKinds are the kinds the webhooks handle; anything else reaching
// them is a misconfigured webhook configuration and is answered with an error.
var workloadKinds = map[metav1.GroupVersionKind]func() client.Object{
	{Group: "apps", Version: "v1", Kind: "Deployment"}:  func() client.Object { return &appsv1.Deployment{} },
	{Group: "apps", Version: "v1", Kind: "StatefulSet"}: func() client.Object { return &appsv1.StatefulSet{} },
	{Group: "apps", Version: "v1", Kind: "DaemonSet"}:   func() client.Object { return &appsv1.DaemonSet{} },
}

// requestError is an admission request rollout-guard cannot work with.
type requestError struct {
	code int32
	msg  string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// decodeWorkload decodes raw as the request's kind.
func decodeWorkload(kind metav1.GroupVersionKind, raw runtime.RawExtension, which string) (client.Object, error) {
	newObj, ok := workloadKinds[kind]
	if !ok {
		return nil, badRequest("rollout-guard does not handle %s/%s %s; check the webhook configuration's rules", kind.Group, kind.Version, kind.Kind)
	}
	if len(raw.Raw) == 0 {
		return nil, badRequest("the admission request has no %s", which)
	}
	obj := newObj()
	// The API server's own JSON rules (case-sensitive, integers kept), without
	// the universal deserializer's format sniffing and second parse for the kind.
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw.Raw, obj); err != nil {
		return nil, badRequest("cannot decode the %s as %s: %v", which, kind.Kind, err)
	}
	return obj, nil
}

// errored answers a request with an error, as the API server expects.
func errored(err error) admission.Response {
	if re, ok := err.(*requestError); ok {
		return admission.Errored(re.code, re)
	}
	return admission.Errored(http.StatusInternalServerError, err)
}

// handledOperation reports whether rollout-guard acts on the operation.
func handledOperation(op admissionv1.Operation) bool {
	return op == admissionv1.Create || op == admissionv1.Update
}
