{{- define "rollout-guard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "rollout-guard.labels" -}}
app.kubernetes.io/name: rollout-guard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "rollout-guard.selector" -}}
app.kubernetes.io/name: rollout-guard
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rollout-guard.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{ with .Values.image.digest }}@{{ . }}{{ end }}
{{- end -}}

{{- define "rollout-guard.webhookName" -}}{{ include "rollout-guard.fullname" . }}-webhook{{- end -}}
{{- define "rollout-guard.watcherName" -}}{{ include "rollout-guard.fullname" . }}-watcher{{- end -}}
{{- define "rollout-guard.tlsSecret" -}}{{ include "rollout-guard.fullname" . }}-webhook-tls{{- end -}}

{{/* Names the API server uses to reach the webhook: its Service, and the host of webhook.url when set. */}}
{{- define "rollout-guard.serviceHosts" -}}
- {{ include "rollout-guard.webhookName" . }}.{{ .Release.Namespace }}.svc
- {{ include "rollout-guard.webhookName" . }}.{{ .Release.Namespace }}.svc.cluster.local
{{- with .Values.webhook.url }}
- {{ (urlParse .).hostname }}
{{- end }}
{{- end -}}

{{- define "rollout-guard.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "rollout-guard.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities: {drop: [ALL]}
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{/* GOMEMLIMIT follows the container's memory limit, so the Go GC works before the OOM killer does. */}}
{{/* Go's runtime settings for a component's values (.gogc, .gomemlimit): GOMEMLIMIT is the set value, or else the
memory limit, where the runtime must stop the heap before the kernel stops the process. */}}
{{- define "rollout-guard.goEnv" -}}
- {name: GOGC, value: {{ .gogc | quote }}}
- name: GOMEMLIMIT
{{- if .gomemlimit }}
  value: {{ .gomemlimit | quote }}
{{- else }}
  valueFrom:
    resourceFieldRef: {resource: limits.memory}
{{- end }}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef: {fieldPath: metadata.namespace}
{{- end -}}
