package webhook

import (
	"os"
	"path/filepath"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// FuzzAdmission feeds arbitrary bytes to both admission handlers as the
// body of an AdmissionReview. They must always answer, never panic.
// Seed corpus: testdata/fuzz/FuzzAdmission plus well-formed reviews built here.
func FuzzAdmission(f *testing.F) {
	h := newHandlers(f)
	for _, seed := range []string{"nginx-deployment.yaml", "surge-app.yaml", "tomcat-deployment.yaml"} {
		obj := manifestJSON(f, filepath.Join("..", "test", "seeds", seed))
		f.Add(review(f, admissionv1.Create, deploymentGVK, obj, nil))
		f.Add(review(f, admissionv1.Update, deploymentGVK, obj, obj))
	}
	if extra, err := filepath.Glob(filepath.Join("testdata", "reviews", "*.json")); err == nil {
		for _, p := range extra {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		serve(t, h.mutating, body)
		serve(t, h.validating, body)
	})
}
