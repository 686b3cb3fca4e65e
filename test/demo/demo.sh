#!/usr/bin/env bash
# The seeds' story, played with the real kubectl against the local cluster that `make dev-up` started.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seeds="$here/../seeds"
k() { "${KUBECTL:-kubectl}" "$@"; }
say() { printf '\n\033[1;34m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ kubectl %s\033[0m\n' "$*"; k "$@"; }
ns=demo

if [ "${NODE:-kwok}" = real ]; then
  say "A local control plane with a REAL node (containerd, runc, CNI, kubelet, kube-proxy); rollout-guard runs as pods, installed from its chart"
  run get nodes -o wide
  run -n rollout-guard get pods -o wide
else
  say "A local control plane: etcd, kube-apiserver, controller-manager, scheduler, and kwok as the kubelet"
  run get nodes
fi
run create namespace "$ns"
until k -n "$ns" get serviceaccount default >/dev/null 2>&1; do sleep 0.2; done

say "1. The classic nginx Deployment has no probes and no rollout settings. rollout-guard fills them in:"
run -n "$ns" apply -f "$seeds/nginx-deployment.yaml"
run -n "$ns" rollout status deployment/nginx-deployment --timeout=90s
run -n "$ns" get deployment nginx-deployment -o jsonpath='{"strategy: "}{.spec.strategy.rollingUpdate}{"\nprogressDeadlineSeconds: "}{.spec.progressDeadlineSeconds}{"\nrevisionHistoryLimit: "}{.spec.revisionHistoryLimit}{"\nminReadySeconds: "}{.spec.minReadySeconds}{"\nreadinessProbe: "}{.spec.template.spec.containers[0].readinessProbe}{"\n"}'

say "2. rollout-guard is invisible to kubectl: diff shows nothing, and applying again changes nothing"
run -n "$ns" diff -f "$seeds/nginx-deployment.yaml" && echo "(no differences)"
run -n "$ns" apply -f "$seeds/nginx-deployment.yaml"

say "3. What you write wins: httpd states revisionHistoryLimit: 10 (the API default), and keeps it"
run -n "$ns" apply -f "$seeds/httpd-deployment.yaml"
run -n "$ns" get deployment httpd -o jsonpath='{"revisionHistoryLimit: "}{.spec.revisionHistoryLimit}{"\n"}'

if [ -f "$here/story.sh" ]; then
  # shellcheck source=/dev/null
  source "$here/story.sh"
fi

say "Done."
