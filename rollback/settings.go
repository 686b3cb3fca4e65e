package rollback

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-guard/rollout-guard/config"
)

// gitOpsManagers are field managers of GitOps controllers: they would apply
// the bad spec again after a rollback, so their Deployments default to dry run.
var gitOpsManagers = []string{"argocd-controller", "argocd-application-controller", "kustomize-controller", "helm-controller"}

// gitOpsLabels mark objects that Argo CD or Flux manage.
var gitOpsLabels = []string{"argocd.argoproj.io/instance", "kustomize.toolkit.fluxcd.io/name", "helm.toolkit.fluxcd.io/name"}

// ResolveSettings combines the global configuration with the workload's
// annotations.
func ResolveSettings(global config.Rollback, d metav1.Object) Settings {
	s := Settings{
		Mode:              Mode(global.Mode),
		ImagePullGrace:    global.ImagePullGracePeriod.Duration,
		CrashLoopRestarts: global.CrashLoopRestarts,
	}
	if by := gitOpsManager(d); by != "" && s.Mode == ModeEnforce {
		s.Mode = ModeDryRun
		s.Notes = append(s.Notes, fmt.Sprintf("managed by %s, which would re-apply the bad spec; set %s: \"true\" to allow automatic rollback", by, AnnotationAutoRollback))
	}
	a := d.GetAnnotations()
	switch v, ok := a[AnnotationAutoRollback]; {
	case !ok:
	case v == "false":
		s.Mode = ModeDisabled
	case v == "dryrun":
		s.Mode = ModeDryRun
	case v == "true":
		if s.Mode != ModeDisabled && Mode(global.Mode) == ModeEnforce {
			s.Mode, s.Notes = ModeEnforce, nil
		}
	default:
		s.Notes = append(s.Notes, fmt.Sprintf("%s=%q ignored: use \"true\", \"false\" or \"dryrun\"", AnnotationAutoRollback, v))
	}
	if v, ok := a[AnnotationImagePullGrace]; ok {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			s.ImagePullGrace = d
		} else {
			s.Notes = append(s.Notes, fmt.Sprintf("%s=%q ignored: use a positive duration like 90s", AnnotationImagePullGrace, v))
		}
	}
	if v, ok := a[AnnotationCrashLoopRestarts]; ok {
		if n, err := strconv.ParseInt(v, 10, 32); err == nil && n > 0 {
			s.CrashLoopRestarts = int32(n)
		} else {
			s.Notes = append(s.Notes, fmt.Sprintf("%s=%q ignored: use a positive whole number", AnnotationCrashLoopRestarts, v))
		}
	}
	return s
}

func gitOpsManager(d metav1.Object) string {
	for _, l := range gitOpsLabels {
		if _, ok := d.GetLabels()[l]; ok {
			return strings.SplitN(l, ".", 2)[0]
		}
	}
	for _, mf := range d.GetManagedFields() {
		for _, m := range gitOpsManagers {
			if mf.Manager == m {
				return m
			}
		}
	}
	return ""
}
