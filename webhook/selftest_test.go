package webhook

import (
	"context"
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

func TestSelfTest(t *testing.T) {
	tests := []struct {
		name     string
		mutates  bool
		validate bool
		want     string // in the error; "" for none
	}{
		{"both answer", true, true, ""},
		{"the mutating webhook is not reached", false, true, "the mutating webhook did not answer"},
		{"the validating webhook is not reached", true, false, "the validating webhook did not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientset()
			c.PrependReactor("create", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
				create := a.(clienttesting.CreateActionImpl)
				if len(create.CreateOptions.DryRun) == 0 {
					t.Error("a create that is not a dry run")
				}
				d := create.GetObject().(*appsv1.Deployment).DeepCopy()
				if tt.validate && d.Spec.RevisionHistoryLimit != nil && *d.Spec.RevisionHistoryLimit == 0 {
					return true, nil, errors.New(`admission webhook "validating.rollout-guard.io" denied the request: rollout-guard denied this Deployment`)
				}
				if tt.mutates {
					d.Spec.Template.Spec.Containers[0].ReadinessProbe = &corev1.Probe{}
				}
				return true, d, nil
			})
			err := SelfTest(context.Background(), c, "default")
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("SelfTest = %v, want %q", err, tt.want)
			}
		})
	}
}
