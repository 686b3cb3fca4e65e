package webhook

import (
	"context"
	"errors"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// SelfTest checks, through the API server as any client reaches them, that both webhooks answer in namespace: a
// server-side dry run of a bare Deployment must come back mutated (a readinessProbe injected), and one with
// revisionHistoryLimit 0 must be denied by rollout-guard. Nothing is stored. It is `helm test`'s check that an
// install works: failurePolicy Ignore otherwise hides webhooks the API server cannot reach.
func SelfTest(ctx context.Context, c kubernetes.Interface, namespace string) error {
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldManager: "rollout-guard-selftest"}
	bare := selfTestDeployment()
	got, err := c.AppsV1().Deployments(namespace).Create(ctx, bare, dryRun)
	var errs []error
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("dry-run create of a bare Deployment in %s: %w", namespace, err))
	case got.Spec.Template.Spec.Containers[0].ReadinessProbe == nil:
		errs = append(errs, fmt.Errorf("the mutating webhook did not answer: a bare Deployment in %s came back without a readinessProbe "+
			"(is the webhook Service reachable from the API server, and does webhook.namespaceSelector select %s?)", namespace, namespace))
	}
	unsafe := selfTestDeployment()
	unsafe.Spec.RevisionHistoryLimit = ptr.To[int32](0)
	_, err = c.AppsV1().Deployments(namespace).Create(ctx, unsafe, dryRun)
	switch {
	case err == nil:
		errs = append(errs, fmt.Errorf("the validating webhook did not answer: a Deployment with revisionHistoryLimit 0 was admitted in %s", namespace))
	case !strings.Contains(err.Error(), "rollout-guard denied"):
		errs = append(errs, fmt.Errorf("dry-run create of a Deployment with revisionHistoryLimit 0 in %s failed, but not by rollout-guard's denial: %w", namespace, err))
	}
	return errors.Join(errs...)
}

func selfTestDeployment() *appsv1.Deployment {
	labels := map[string]string{"app.kubernetes.io/name": "rollout-guard-selftest"}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "rollout-guard-selftest", Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.k8s.io/pause:3.10", Ports: []corev1.ContainerPort{{ContainerPort: 80}},
				}}},
			},
		},
	}
}
