# The rest of the seeds' story; sourced by demo.sh (k, say, run, ns and seeds are set there).

say "4. Policies: the 50%/50% app would take half its pods down at once. Denied, with the field and the fix:"
run -n "$ns" apply -f "$seeds/surge-app.yaml" || true

say "5. A moving tag cannot be rolled back to. nginx:latest is admitted, with a warning:"
sed 's/name: nginx-deployment/name: latest-demo/; s/app: nginx/app: latest-demo/g; s/nginx:1.7.9/nginx:latest/' "$seeds/nginx-deployment.yaml" |
  run -n "$ns" apply -f -

say "6. The same verdicts offline, before anything reaches a cluster: rollout-guard check"
printf '\033[2m$ rollout-guard check -f test/seeds/\033[0m\n'
"${ROLLOUT_GUARD:-bin/rollout-guard}" check -f "$seeds" | grep -E 'DENIED|admitted|checked' || true

say "7. A good update: nginx 1.7.9 -> 1.9.1. The watcher leaves it alone:"
run -n "$ns" set image deployment/nginx-deployment nginx=nginx:1.9.1
run -n "$ns" rollout status deployment/nginx-deployment --timeout=120s

say "8. A typo: nginx:1.161 does not exist. Pods wait in ImagePullBackOff; Kubernetes alone would wait forever."
until [ -n "$(k -n "$ns" get rs -l app=nginx -o jsonpath='{.items[?(@.metadata.annotations.deployment\.kubernetes\.io/revision=="2")].metadata.annotations.rollout-guard\.io/known-good}')" ]; do sleep 0.5; done
run -n "$ns" set image deployment/nginx-deployment nginx=nginx:1.161
sleep 3
run -n "$ns" get pods -l app=nginx
echo "(the watcher gives a stalled image ${GRACE:-10s} before it acts)"
for _ in $(seq 1 60); do
  [ "$(k -n "$ns" get deployment nginx-deployment -o jsonpath='{.spec.template.spec.containers[0].image}')" = "nginx:1.9.1" ] && break
  sleep 1
done

say "9. ...and rolled back to the last revision known to be good, exactly like kubectl rollout undo:"
run -n "$ns" get events --field-selector reason=RolloutGuardRolledBack -o custom-columns=REASON:.reason,MESSAGE:.message
run -n "$ns" rollout status deployment/nginx-deployment --timeout=120s
run -n "$ns" rollout history deployment/nginx-deployment
run -n "$ns" get rs -l app=nginx -o custom-columns=NAME:.metadata.name,REVISION:.metadata.annotations.deployment\\.kubernetes\\.io/revision,IMAGE:.spec.template.spec.containers[0].image,READY:.status.readyReplicas

say "10. The same bad image again: admitted with a known-bad-revision warning (deny is configurable), and not rolled back twice; an Event says why:"
run -n "$ns" set image deployment/nginx-deployment nginx=nginx:1.161
for _ in $(seq 1 60); do
  k -n "$ns" get events --field-selector reason=RolloutGuardRollbackSkipped -o name 2>/dev/null | grep -q . && break
  sleep 1
done
run -n "$ns" get events --field-selector reason=RolloutGuardRollbackSkipped -o custom-columns=REASON:.reason,MESSAGE:.message

say "11. What already runs: the platform team adds a policy (every workload names its team). The nginx app was admitted long ago; the watcher's audit finds it and writes the namespace's PolicyReport:"
cat <<'YAML' | run apply -f -
apiVersion: rollout-guard.io/v1alpha1
kind: RolloutPolicy
metadata: {name: team-label}
spec:
  match: {namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: demo}}}
  rego: |
    package rollout_guard.team_label

    deny contains "metadata.labels.team is required: label the workload with the team that owns it" if {
      not input.object.metadata.labels.team
    }
YAML
for _ in $(seq 1 60); do
  k -n "$ns" get policyreport rollout-guard -o jsonpath='{.results[*].policy}' 2>/dev/null | grep -q team-label && break
  sleep 1
done
run -n "$ns" get policyreports
run -n "$ns" get policyreport rollout-guard -o jsonpath='{range .results[*]}{.result}{"  "}{.policy}{"  "}{.resources[0].kind}/{.resources[0].name}{": "}{.message}{"\n"}{end}'
run delete rolloutpolicy team-label

if [ "${NODE:-kwok}" = real ]; then
  say "12. Ready is not healthy. The shop app opts in to the chart's http-error-rate analysis; Prometheus scrapes it, and traffic flows through its Service:"
  cat <<'YAML' | run -n "$ns" apply -f -
apiVersion: apps/v1
kind: Deployment
metadata:
  name: shop
  annotations: {rollout-guard.io/analysis: http-error-rate}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata:
      labels: {app: shop}
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: "80"}
    spec:
      containers:
      - {name: shop, image: "app:v1", ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  selector: {app: shop}
  ports: [{port: 80, targetPort: 80}]
YAML
  run -n "$ns" rollout status deployment/shop --timeout=120s
  ip=$(k -n "$ns" get service shop -o jsonpath='{.spec.clusterIP}')
  (while :; do curl -s -o /dev/null --max-time 2 "http://$ip/" || true; sleep 0.05; done) &
  traffic=$!
  trap 'kill $traffic 2>/dev/null || true' EXIT
  run get rolloutanalysis http-error-rate -o jsonpath='{"query: "}{.spec.queries[0].query}{"\nmax: "}{.spec.queries[0].max}{"  interval: "}{.spec.interval}{"  failureLimit: "}{.spec.failureLimit}{"  bakeTime: "}{.spec.bakeTime}{"\n"}'
  echo "(waiting for the analysis to judge revision 1 known-good after its bake time)"
  until [ -n "$(k -n "$ns" get rs -l app=shop -o jsonpath='{.items[?(@.metadata.annotations.deployment\.kubernetes\.io/revision=="1")].metadata.annotations.rollout-guard\.io/known-good}')" ]; do sleep 1; done

  say "13. app:errors passes its readiness probe and answers 20% of requests with 500s. The analysis catches it and the watcher rolls it back:"
  run -n "$ns" set image deployment/shop shop=app:errors
  for _ in $(seq 1 120); do
    k -n "$ns" get events --field-selector reason=RolloutGuardRolledBack -o jsonpath='{.items[*].message}' | grep -q 'app:errors' && break
    sleep 1
  done
  kill "$traffic" 2>/dev/null || true
  run -n "$ns" get events --field-selector reason=RolloutGuardRolledBack,involvedObject.name=shop -o custom-columns=REASON:.reason,MESSAGE:.message
  run -n "$ns" rollout status deployment/shop --timeout=120s
  run -n "$ns" get deployment shop -o jsonpath='{"image now: "}{.spec.template.spec.containers[0].image}{"\n"}'
fi
