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
