package rollback

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rollout-guard/rollout-guard/config"
)

func defaultRollbackConfig() config.Rollback {
	c := config.Default().Rollback
	c.ImagePullGracePeriod = metav1.Duration{Duration: time.Minute}
	return c
}
