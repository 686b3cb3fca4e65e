package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"

	"github.com/rollout-guard/rollout-guard/config"
	"github.com/rollout-guard/rollout-guard/policies/v1alpha1"
)

type handlers struct {
	mutating, validating http.Handler
	set                  *PolicySet
}

func newHandlers(t testing.TB) handlers {
	t.Helper()
	return newHandlersWithHistory(t, nil)
}

// newHandlersWithHistory builds both handlers with the default options; history, when not nil, is where they read
// workloads and their revisions.
func newHandlersWithHistory(t testing.TB, history client.Reader) handlers {
	t.Helper()
	scheme := testScheme(t)
	opts := config.Default()
	set, metrics := policySetAndMetrics(t, opts)
	decoder := admission.NewDecoder(scheme)
	return handlers{
		mutating:   &admission.Webhook{Handler: NewMutator(decoder, opts, nil, history, metrics), RecoverPanic: ptr.To(true)},
		validating: &admission.Webhook{Handler: NewValidator(decoder, opts, set, nil, history, statusWriters{}, metrics), RecoverPanic: ptr.To(true)},
		set:        set,
	}
}

// policySetAndMetrics compiles the policies of opts and makes the handlers' metrics, on a registry of their own.
func policySetAndMetrics(t testing.TB, opts config.Options) (*PolicySet, *Metrics) {
	t.Helper()
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	set, err := NewPolicySet(context.Background(), opts.Policies)
	if err != nil {
		t.Fatal(err)
	}
	return set, metrics
}

func testScheme(t testing.TB) *runtime.Scheme {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return scheme
}

var deploymentGVK = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

func review(t testing.TB, op admissionv1.Operation, kind metav1.GroupVersionKind, object, old []byte) []byte {
	t.Helper()
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("uid-1"), Kind: kind, Operation: op, Namespace: "team", Name: "web",
			Resource: metav1.GroupVersionResource{Group: kind.Group, Version: kind.Version, Resource: strings.ToLower(kind.Kind) + "s"},
			Object:   runtime.RawExtension{Raw: object}, OldObject: runtime.RawExtension{Raw: old},
		},
	}
	b, err := json.Marshal(ar)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func serve(t testing.TB, h http.Handler, body []byte) (*admissionv1.AdmissionResponse, int) {
	t.Helper()
	req, rec := reviewRequest(body)
	h.ServeHTTP(rec, req)
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &ar); err != nil || ar.Response == nil {
		return nil, rec.Code
	}
	return ar.Response, rec.Code
}

// reviewRequest is the API server's POST of an AdmissionReview, and a recorder for the answer.
func reviewRequest(body []byte) (*http.Request, *httptest.ResponseRecorder) {
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req, httptest.NewRecorder()
}

// manifestJSON reads a seed and returns it as the API server would send it:
// JSON, with the API defaults rollout-guard's decisions depend on.
func manifestJSON(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestMutatingHandler(t *testing.T) {
	h := newHandlers(t)
	obj := manifestJSON(t, "../test/seeds/nginx-deployment.yaml")
	resp, _ := serve(t, h.mutating, review(t, admissionv1.Create, deploymentGVK, obj, nil))
	if resp == nil || !resp.Allowed || len(resp.Patch) == 0 {
		t.Fatalf("response %+v", resp)
	}
	if !strings.Contains(string(resp.Patch), "readinessProbe") || len(resp.Warnings) == 0 {
		t.Errorf("patch %s warnings %v", resp.Patch, resp.Warnings)
	}
	if strings.Contains(string(resp.Patch), "creationTimestamp") || strings.Contains(string(resp.Patch), `"status"`) {
		t.Errorf("patch touches fields mutation did not change: %s", resp.Patch)
	}
}

func TestValidatingHandler(t *testing.T) {
	h := newHandlers(t)
	resp, _ := serve(t, h.validating, review(t, admissionv1.Create, deploymentGVK, manifestJSON(t, "../test/seeds/surge-app.yaml"), nil))
	if resp == nil || resp.Allowed || !strings.Contains(resp.Result.Message, "spec.strategy.rollingUpdate.maxUnavailable") {
		t.Fatalf("50/50 seed: %+v", resp)
	}
	// The same object on UPDATE from itself is an old violation: it passes, with a warning.
	obj := manifestJSON(t, "../test/seeds/surge-app.yaml")
	resp, _ = serve(t, h.validating, review(t, admissionv1.Update, deploymentGVK, obj, obj))
	if resp == nil || !resp.Allowed || !strings.Contains(strings.Join(resp.Warnings, "\n"), "already broken before this update") {
		t.Fatalf("ratchet: %+v", resp)
	}
}

// Malformed and unexpected requests get a clear error answer, never a panic.
func TestHandlersRejectBadRequests(t *testing.T) {
	h := newHandlers(t)
	obj := manifestJSON(t, "../test/seeds/nginx-deployment.yaml")
	tests := []struct {
		name string
		body []byte
		want string
	}{
		{"not JSON", []byte("{not json"), ""},
		{"no request", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), ""},
		{"unexpected kind", review(t, admissionv1.Create, metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}, obj, nil), "does not handle"},
		{"missing object", review(t, admissionv1.Create, deploymentGVK, nil, nil), "has no object"},
		{"object of the wrong shape", review(t, admissionv1.Create, deploymentGVK, []byte(`{"spec":{"replicas":"three"}}`), nil), "cannot decode"},
		{"update without old object", review(t, admissionv1.Update, deploymentGVK, obj, []byte(`[1,2]`)), ""},
	}
	for _, tt := range tests {
		for name, handler := range map[string]http.Handler{"mutating": h.mutating, "validating": h.validating} {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				resp, code := serve(t, handler, tt.body)
				if resp == nil {
					if code < 400 {
						t.Fatalf("no admission response and HTTP %d", code)
					}
					return
				}
				if tt.want != "" && (resp.Allowed || resp.Result == nil || !strings.Contains(resp.Result.Message, tt.want)) {
					t.Errorf("response %+v, want an error mentioning %q", resp.Result, tt.want)
				}
			})
		}
	}
}
