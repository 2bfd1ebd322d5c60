{{/* Herald's namespace is fixed: the binaries keep their Lease, Secrets and Events there. */}}
{{- define "herald.namespace" -}}
{{- if ne .Release.Namespace "herald-system" -}}
{{- fail (printf "Herald installs into the namespace herald-system, not %q: use -n herald-system" .Release.Namespace) -}}
{{- end -}}
{{ .Release.Namespace }}
{{- end -}}

{{/* Labels on every object of the release. */}}
{{- define "herald.labels" -}}
app.kubernetes.io/name: herald
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* image renders repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "herald.image" -}}
{{ .image.repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- end -}}

{{/* Where a metrics certificate Secret is mounted in both components. */}}
{{- define "herald.metricsCertDir" -}}
/etc/herald/metrics-cert
{{- end -}}

{{/* metricsArgs: the metrics flags beyond the address (none by default: HTTPS with a self-signed certificate). */}}
{{- define "herald.metricsArgs" -}}
{{- if not .Values.metrics.secure -}}
- --metrics-secure=false
{{- else if .Values.metrics.certSecret -}}
- --metrics-cert-dir={{ include "herald.metricsCertDir" . }}
{{- end -}}
{{- end -}}

{{/* metricsCertMount and metricsCertVolume: metrics.certSecret in the pod. */}}
{{- define "herald.metricsCertMount" -}}
{{- if and .Values.metrics.secure .Values.metrics.certSecret -}}
volumeMounts:
  - {name: metrics-cert, mountPath: {{ include "herald.metricsCertDir" . }}, readOnly: true}
{{- end -}}
{{- end -}}

{{- define "herald.metricsCertVolume" -}}
{{- if and .Values.metrics.secure .Values.metrics.certSecret -}}
volumes:
  - name: metrics-cert
    secret: {secretName: {{ .Values.metrics.certSecret }}}
{{- end -}}
{{- end -}}
