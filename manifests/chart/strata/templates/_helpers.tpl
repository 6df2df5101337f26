{{/* The labels every object of the release carries. */}}
{{- define "strata.labels" -}}
app.kubernetes.io/name: strata-controller
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: strata
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* What the Deployment selects: stable across upgrades (a selector cannot change). */}}
{{- define "strata.selector" -}}
app.kubernetes.io/name: strata-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* REGISTRY/REPOSITORY:TAG, the tag defaulting to the chart's appVersion. */}}
{{- define "strata.imageRef" -}}
{{- $root := index . 0 -}}
{{- $image := index . 1 -}}
{{- $tag := $image.tag | default $root.Chart.AppVersion -}}
{{- if $root.Values.imageRegistry -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $root.Values.imageRegistry) $image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The controller's service account. Its name is fixed: the controller binds the static
roles below to it by name in each namespace it manages (docs/security.md). */}}
{{- define "strata.serviceAccount" -}}strata-controller{{- end -}}
