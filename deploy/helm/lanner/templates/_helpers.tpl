{{/* The release's full name: the release name, with the chart's unless it already holds it. */}}
{{- define "lanner.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "lanner.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The image reference. */}}
{{- define "lanner.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag }}
{{- end -}}

{{/* The node service account's name. */}}
{{- define "lanner.serviceAccount" -}}
{{- default (include "lanner.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* The backtest service account's name. */}}
{{- define "lanner.backtestServiceAccount" -}}
{{- default (printf "%s-backtest" (include "lanner.fullname" .)) .Values.backtest.serviceAccount.name -}}
{{- end -}}
